"""`make demo`: the whole service end to end on embedded defaults, in under two minutes."""
