"""matchhub: a privacy-preserving inter-agency data-matching broker.

The broker holds re-keyed tokens and flag codes, never names, national ID numbers, amounts or
dates of birth. See ``docs/design.md`` for what it promises.
"""

__version__ = "0.1.0"
