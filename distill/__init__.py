"""distill: distil deep goal-conditioned CRL teachers into shallow students that fit a robot's budget."""

__version__ = "0.1.0"
