"""Tactful: personalization with tact.

Decides, per proposed personalized touch, whether customer data may be used, how much of it may
show and through which channel — and explains why.
"""

__version__ = "0.1.0"
