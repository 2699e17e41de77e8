"""The peer a user would pick instead: LangChain's map-reduce chain over a HF pipeline, written
out as the plain loop it runs (one generate call per chunk, batch 1, fp32, default decoding)."""

import time

import torch

from recursum.service.engine.models.model_store import default_model_path

# LangChain's default map and combine prompt for load_summarize_chain(chain_type="map_reduce").
LANGCHAIN_PROMPT = 'Write a concise summary of the following:\n\n\n"{text}"\n\n\nCONCISE SUMMARY:'


class NaiveMapReduce:
    def __init__(self, dtype: torch.dtype = torch.float32) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = default_model_path()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).eval()
        self.generated_tokens = 0
        self.seconds = 0.0

    def generate(self, messages: list[dict[str, str]], max_new_tokens: int,
                 min_new_tokens: int = 0) -> str:
        """One call, batch 1, greedy, no repetition control: what the pipeline does by default."""
        inputs = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                                    return_tensors="pt", return_dict=True)
        started = time.perf_counter()
        with torch.inference_mode():
            output = self.model.generate(**inputs, max_new_tokens=max_new_tokens,
                                         min_new_tokens=min_new_tokens, do_sample=False,
                                         pad_token_id=self.tokenizer.eos_token_id)
        self.seconds += time.perf_counter() - started
        new = output[0, inputs["input_ids"].shape[1] :]
        self.generated_tokens += len(new)
        return self.tokenizer.decode(new, skip_special_tokens=True).strip()

    def summarize(self, chunks: list[str], max_new_tokens: int) -> str:
        """Map every chunk, then reduce all chunk summaries in one call."""
        def ask(text: str) -> str:
            return self.generate([{"role": "user", "content": LANGCHAIN_PROMPT.format(text=text)}],
                                 max_new_tokens)

        summaries = [ask(chunk) for chunk in chunks]
        return ask("\n\n".join(summaries)) if len(summaries) > 1 else summaries[0]
