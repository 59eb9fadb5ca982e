"""Make the bundled demo text set `sample_data/support_tickets.csv`: customer-support tickets in four classes.

Run from the project root: `python sample_data/make_texts.py` (same output every time).

Why generated: the set must be ours (no downloaded or third-party texts) and small enough to commit. Each
ticket is written from a class's own situations and a pool of openings, details and sign-offs shared by all
classes, so the words a ticket shares with other classes carry no label; what tells the classes apart is what
the customer describes, in varied wording. A few tickets mention two topics (as real ones do), and the classes
overlap in vocabulary ("account", "order", "app", "charge"), so a bag of keywords is not enough for every one.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

SEED = 20261201
PER_CLASS = 60
OUT = Path(__file__).resolve().parent / "support_tickets.csv"

OPENINGS = ["Hi,", "Hello team,", "Good morning.", "Hey there,", "Dear support,", "", "", "Quick question:",
            "I need help.", "Not happy right now.", "Hi again,"]
CLOSINGS = ["Thanks.", "Thank you in advance.", "Please advise.", "Can you look into it?", "Regards, Sam",
            "Any update would help.", "", "", "Cheers", "This is the second time I write about it."]
WHEN = ["yesterday", "this morning", "since Monday", "after the last update", "two days ago", "on my phone",
        "on the laptop", "last week", "tonight", "when I opened the app"]
ITEMS = ["the blue jacket", "my order", "the headphones", "the gift card", "order 48213", "the desk lamp",
         "two books", "the replacement part", "a pair of shoes", "the subscription box"]

SITUATIONS = {
    "billing": [
        "I was charged twice for {item} {when}.",
        "The invoice shows a higher amount than the price on the website.",
        "My card was charged but the payment says pending {when}.",
        "I cancelled the plan but the monthly fee was taken again.",
        "Could you send a receipt with our company VAT number for {item}?",
        "The refund for {item} has not reached my bank account yet.",
        "Why is there an extra fee of 4.99 on my statement?",
        "I used a discount code at checkout and it was not applied to the total.",
        "Please change the billing address on my account before the next charge.",
        "The price went up without any notice on my subscription.",
    ],
    "login": [
        "I cannot sign in to my account {when}.",
        "The password reset email never arrives.",
        "It says my account is locked after three attempts.",
        "The two-factor code is always rejected as expired.",
        "I changed my phone and lost access to the authenticator app.",
        "The app logs me out every few minutes {when}.",
        "I get 'invalid credentials' although the password is right.",
        "How do I change the email address I use to log in?",
        "Someone else may have accessed my account, I saw a sign-in from another country.",
        "The sign-in page just spins and never loads {when}.",
    ],
    "shipping": [
        "{item} has not arrived and the tracking has not moved {when}.",
        "The parcel was delivered to the wrong address.",
        "The box arrived damaged and {item} is broken.",
        "Can I change the delivery date for {item}?",
        "The courier says delivered but nothing is at my door.",
        "Do you ship to Norway and how long does it take?",
        "Only part of my order came, {item} is missing.",
        "The tracking number you sent does not work on the courier's site.",
        "I need {item} before Friday, can it be sent express?",
        "The delivery was returned to you and I still want it.",
    ],
    "bug": [
        "The app crashes when I open the settings page {when}.",
        "Search returns nothing even for {item} that I can see on the home page.",
        "Pictures do not load in the product pages {when}.",
        "The checkout button does nothing when I tap it.",
        "Dark mode makes the text unreadable on the order history screen.",
        "Notifications arrive twice for every message.",
        "The page shows an error 500 when I filter by size.",
        "After the update the app is very slow and freezes on scroll.",
        "The wishlist forgets {item} every time I restart the app.",
        "The language switches back to English by itself {when}.",
    ],
}
MIXED = {  # a second topic, mentioned in passing (the label is the first)
    "billing": "Also the app was slow, but the charge matters more.",
    "login": "I also wanted to ask about my last order, but first I need to get in.",
    "shipping": "I was charged already, so I expect it to arrive.",
    "bug": "I have not been able to track my parcel because of this.",
}


def ticket(rng: random.Random, label: str) -> str:
    """One ticket of a class: an opening, one or two of its situations, sometimes another topic, a closing."""
    situations = rng.sample(SITUATIONS[label], k=rng.choice((1, 1, 2)))
    body = " ".join(s.format(item=rng.choice(ITEMS), when=rng.choice(WHEN)) for s in situations)
    if rng.random() < 0.15:
        body += " " + MIXED[label]
    text = " ".join(part for part in (rng.choice(OPENINGS), body, rng.choice(CLOSINGS)) if part)
    return text if rng.random() > 0.2 else text.lower()


def main() -> None:
    rng = random.Random(SEED)
    rows, seen = [], set()
    for label in SITUATIONS:
        made = 0
        while made < PER_CLASS:
            text = ticket(rng, label)
            if text.casefold() in seen:
                continue
            seen.add(text.casefold())
            rows.append((text, label))
            made += 1
    rng.shuffle(rows)
    with OUT.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    print(f"wrote {len(rows)} tickets to {OUT}")


if __name__ == "__main__":
    main()
