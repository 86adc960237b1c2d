"""chokepoint: export controls on advanced AI chips and chipmaking tools as cited, dated rules."""

__version__ = "0.1.0"
__all__ = ["__version__"]
