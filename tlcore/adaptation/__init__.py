"""What domain-adaptation methods do to a model: AdaBN, entropy, MCC, DANN and L2-SP objectives."""
