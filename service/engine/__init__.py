"""The summarization engine: document → chunks → batched heights → tree with evidence."""
