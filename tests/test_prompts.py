"""Role prompts: what the model is told, shared by serving and training."""

import msgspec

from recursum.service.engine.pipeline.prompts import chunk_prompt, merge_prompt, render_messages, task_prompt

CHILDREN = ["Alice followed the Rabbit down a hole. Later Alice grew tall.",
            "The Duchess gave the baby to Alice, and the Cat grinned at Alice."]


def test_a_merge_prompt_lists_the_characters_its_children_name_most_mentioned_first():
    prompt = merge_prompt(CHILDREN)
    assert prompt.cast == ("Alice", "Rabbit", "Duchess", "Cat")
    user = render_messages(prompt)[-1]["content"]
    assert "The characters: Alice, Rabbit, Duchess, Cat.\n" in user
    assert user.index(CHILDREN[1]) < user.index("The characters:")


def test_a_merge_of_unnamed_summaries_has_no_cast_line():
    user = render_messages(merge_prompt(["someone walked home.", "it rained."]))[-1]["content"]
    assert "characters:" not in user


def test_training_formats_a_merge_input_as_serving_does():
    assert task_prompt("merge", "\n\n".join(CHILDREN)) == merge_prompt(CHILDREN)


def test_a_plain_prompt_encodes_as_before_and_a_question_makes_another_one():
    plain = chunk_prompt("Alice ran.")
    assert msgspec.json.encode(plain) == b'{"role":"chunk","passage":"Alice ran.","context":"","cast":[]}'
    asked = chunk_prompt("Alice ran.", question="  Where does   Alice go? ")
    assert asked.question == "Where does Alice go?" and asked != plain
    assert merge_prompt(["Alice ran."], "Why?").question == "Why?"
    assert chunk_prompt("Alice ran.", question=" ") == plain


def test_the_template_digest_follows_the_wording_not_the_contents(monkeypatch):
    from recursum.service.engine.pipeline import prompts

    plain, other = chunk_prompt("Alice ran."), chunk_prompt("The Rabbit hurried.", "before")
    assert prompts.template_digest(plain) == prompts.template_digest(other)
    assert prompts.template_digest(plain) != prompts.template_digest(merge_prompt(["Alice ran."]))
    asked = chunk_prompt("Alice ran.", question="Why?")
    assert prompts.template_digest(plain) != prompts.template_digest(asked)
    monkeypatch.setattr(prompts, "SYSTEM", "You summarize stories.")
    prompts._template_digest.cache_clear()
    changed = prompts.template_digest(plain)
    prompts._template_digest.cache_clear()
    monkeypatch.undo()
    assert changed != prompts.template_digest(plain), "new instructions give new node keys"
