"""The seed personas' touches, decided from the store (tests/test_realtime.py)."""

from __future__ import annotations

from typing import Any

EMAIL_OFFER: dict[str, Any] = {"kind": "offer", "purpose": "marketing.communications.email",
                               "channel": "email", "to": {"kind": "email"}, "depth": "segment"}

#: (case id, customer, touch section, allowed verdicts, rules that must fire)
PERSONA_CASES: list[tuple[str, str, dict[str, Any], set[str], set[str]]] = [
    # 001: the postcard home that shows the adult-shop order; a sealed letter home that shows it; a
    # sealed letter to the PO box that shows nothing
    ("postcard-home-shows-order", "persona-postcard",
     {"kind": "offer", "purpose": "marketing.communications.postal", "channel": "postcard",
      "to": "persona-postcard-home", "uses": [{"kind": "purchase", "within_days": 60}],
      "shows": [{"kind": "purchase", "within_days": 60}], "depth": "item", "named": True},
     {"block"}, {"sensitive-on-shared-channel"}),
    ("letter-home-shows-order", "persona-postcard",
     {"kind": "offer", "purpose": "marketing.communications.postal", "channel": "postal_mail",
      "to": "persona-postcard-home", "uses": [{"kind": "purchase", "within_days": 60}],
      "shows": [{"kind": "purchase", "within_days": 60}], "depth": "item", "named": True},
     {"soften", "block"}, {"sensitive-on-shared-channel"}),
    ("letter-po-box-benign", "persona-postcard",
     {"kind": "offer", "purpose": "marketing.communications.postal", "channel": "postal_mail",
      "to": "persona-postcard-pobox", "depth": "segment"},
     {"allow"}, set()),
    # 002/004: the teenager: the inference drives the offer; baby items to the family email
    ("teen-inference-targets", "persona-teen",
     {**EMAIL_OFFER, "uses": [{"kind": "inference"}], "depth": "item"},
     {"block"}, {"inferred-sensitive-without-opt-in"}),
    ("teen-baby-items-family-email", "persona-teen",
     {**EMAIL_OFFER, "uses": [{"kind": "purchase", "within_days": 30}], "shows_items": ["BABY"],
      "depth": "item"},
     {"block"}, {"sensitive-on-shared-channel", "shown-items-reveal-inference"}),
    ("teen-newsletter-benign", "persona-teen", EMAIL_OFFER, {"allow"}, set()),
    # 000: the diner: SMS about the partner's payment data; an individual export; an email offer
    ("diner-sms-partner-fact", "persona-diner",
     {"kind": "offer", "purpose": "marketing.communications.sms", "channel": "sms",
      "to": {"kind": "phone"}, "uses": [{"source": "partner:tablepay"}],
      "shows": [{"source": "partner:tablepay"}], "depth": "item"},
     {"block"}, {"marketing-needs-opt-in", "partner-collected-data", "out-of-context-use"}),
    ("diner-individual-export", "persona-diner",
     {"kind": "share", "purpose": "third_party_sharing", "channel": "partner_export",
      "sender": "first_party", "uses": [{"context": "payment"}], "shows": [{"context": "payment"}],
      "depth": "item", "granularity": "individual"},
     {"block"}, {"individual-share-needs-consent"}),
    ("diner-email-benign", "persona-diner", EMAIL_OFFER, {"allow"}, set()),
    # 004: the birthday given for account security
    ("birthday-greeting", "persona-birthday",
     {**EMAIL_OFFER, "kind": "greeting", "uses": [{"category": "user.demographic.date_of_birth"}],
      "shows": [{"category": "user.demographic.date_of_birth"}], "depth": "category", "named": True,
      "trigger": "event"},
     {"ask"}, {"birthday-needs-expectation"}),
    ("birthday-newsletter-benign", "persona-birthday", EMAIL_OFFER, {"allow"}, set()),
    # 004: the deceased customer
    ("deceased-postal-offer", "persona-deceased",
     {"kind": "offer", "purpose": "marketing.communications.postal", "channel": "postal_mail",
      "to": {"kind": "postal"}, "depth": "segment"},
     {"block"}, {"deceased-customer"}),
    # 004: the shoe buyer
    ("shoes-history-benign", "persona-shoes",
     {**EMAIL_OFFER, "kind": "recommendation", "uses": [{"kind": "purchase", "within_days": 60}],
      "depth": "history", "named": True},
     {"allow"}, set()),
    ("shoes-detailed-history", "persona-shoes",
     {**EMAIL_OFFER, "kind": "recommendation", "uses": [{"kind": "purchase", "within_days": 60}],
      "shows": [{"kind": "purchase", "within_days": 60}], "depth": "detailed_history", "named": True},
     {"soften"}, {"detailed-history-never"}),
    # 002: the aisle seat
    ("aisle-applied-quietly-benign", "persona-aisle",
     {"kind": "service", "purpose": "essential.service.operations", "channel": "app",
      "uses": [{"kind": "preference"}], "depth": "none", "trigger": "event"},
     {"allow"}, set()),
    ("aisle-announced-in-marketing", "persona-aisle",
     {**EMAIL_OFFER, "uses": [{"kind": "preference"}], "shows": [{"kind": "preference"}],
      "depth": "category", "named": True},
     {"soften"}, {"operational-preference-quietly"}),
    # 002: the support-chat disclosure
    ("chat-disclosure-in-marketing", "persona-chat",
     {**EMAIL_OFFER, "uses": [{"source": "chat"}], "shows": [{"source": "chat"}], "depth": "item"},
     {"block"}, {"out-of-context-use"}),
    # the disclosure does not taint the customer: an offer that does not use it is fine (an advisor
    # prompt in the same support conversation that uses it is blocked today by
    # inferred-sensitive-without-opt-in: the implied health category counts as undeclared)
    ("chat-offer-without-disclosure-benign", "persona-chat",
     {**EMAIL_OFFER, "uses": [{"kind": "purchase"}]}, {"allow"}, set()),
]
