"""The analyst review app (`fraud review`, docs/review.md): the queue of open cases, verdicts, customers' answers."""
