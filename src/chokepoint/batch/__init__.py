"""Order books: the flat layout, streaming batch runs."""
