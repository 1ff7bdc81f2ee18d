"""Pure criteria engines, remission timeline and surveillance schedules.

Standard library only; no I/O, no logging, no clock (``as_of`` is a parameter).
"""
