"""Answering a turn: the router (memory, then the student, then the teacher), which model answers (adapter scope),
the confidence calibration, and the answer counts shared across workers."""
