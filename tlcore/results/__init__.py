"""A trained run read back and used: its files, held-out evaluation, prediction (pictures, texts, any modality),
export, Grad-CAM, label-free target scores, TensorBoard and MLflow."""
