"""Rosters: who a span names, which names a summary invents, and which it tells something about."""

from recursum.service.engine.pipeline.roster import (
    invented_names,
    names_in_action,
    roster,
    summary_names,
    vocabulary,
)

STORY = ("Alice sat by the river. Then the White Rabbit ran past, and Alice followed the Rabbit. "
         "Later the Hatter shouted at Alice. The Rabbit hid from the Hatter.")


def test_the_roster_lists_names_most_mentioned_first():
    assert roster(STORY)[:3] == ["Alice", "Rabbit", "Hatter"]


def test_the_roster_can_be_cut_to_the_leading_names():
    assert roster(STORY, limit=1) == ["Alice"]


def test_a_name_the_source_never_mentions_is_invented():
    assert invented_names("Alice met Bob by the river. Then Alice ran home.", vocabulary(STORY)) == ["Bob"]


def test_names_of_the_source_are_not_invented_even_at_a_sentence_start():
    assert invented_names("Alice followed the Rabbit. Hatter shouted.", vocabulary(STORY)) == []


def test_a_sentence_initial_name_counts_when_the_source_names_it():
    assert summary_names("Hatter shouts at the Rabbit.", frozenset({"Hatter"})) == ["Hatter", "Rabbit"]


def test_a_bare_list_of_names_tells_nothing_about_them():
    assert names_in_action("Alice, Rabbit, Hatter.", ["Alice", "Rabbit", "Hatter"]) == []


def test_a_name_in_a_sentence_about_what_happens_counts():
    summary = "Alice chases the Rabbit into a hole and meets a strange Hatter there."
    assert names_in_action(summary, ["Alice", "Rabbit", "Hatter", "Duchess"]) == ["Alice", "Rabbit", "Hatter"]
