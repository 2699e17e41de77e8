"""The summarization pipeline: document, tokens, chunking, tree, prompts, generation, recursion, evidence."""
