"""`mentee eval`: a question stream through a running server, scored per turn and per learning round."""
