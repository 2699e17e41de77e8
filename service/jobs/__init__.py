"""Jobs outside HTTP: the model worker that runs them, their events, callbacks and metrics."""
