"""Side-by-side speed ratios of this library against the alternatives (``make bench``)."""
