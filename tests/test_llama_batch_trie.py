"""The batch plan of the batched llama-cpp judge: a prefix trie of what each sequence still needs.

Pure Python (no model): tests/test_judging_llama.py decodes such plans with the real GGUF.
"""

from vlmdyn_cli.judging.backends.llama_batch import plan_rows, trie_size


def paths(rows) -> dict[int, list[tuple[int, int]]]:
    """For each sequence, the (position, token) of every row it belongs to, in row order."""
    out: dict[int, list[tuple[int, int]]] = {}
    for r, seqs in enumerate(rows.seqs):
        for s in seqs:
            out.setdefault(s, []).append((rows.pos[r], rows.token[r]))
    return out


def check_plan(todo, rows) -> None:
    """Every sequence gets exactly its new tokens at consecutive positions, parents before children,
    its logits read after its last token; rows sharing sequences follow the same tokens."""
    got = paths(rows)
    for s, (keep, want) in todo.items():
        assert got.get(s, []) == [(p, want[p]) for p in range(keep, len(want))]
        if len(want) > keep:
            assert rows.pos[rows.last[s]] == len(want) - 1 and s in rows.seqs[rows.last[s]]
    for r, seqs in enumerate(rows.seqs):
        assert len(set(seqs)) == len(seqs)
        histories = {tuple(todo[s][1][:rows.pos[r] + 1]) for s in seqs}
        assert len(histories) == 1            # one row only for sequences with the same tokens so far


def test_shared_prefixes_are_one_row_each():
    q = [1, 50, 51, 52, 53]                   # e.g. BOS + the rubric + a question
    todo = {1: (0, q + [7, 8, 9]), 2: (0, q + [7, 8, 20]), 3: (0, q + [30, 31])}
    rows = plan_rows(todo)
    check_plan(todo, rows)
    assert len(rows.token) == len(q) + 2 + 1 + 1 + 2 == trie_size([t for _, t in todo.values()])
    assert rows.seqs[0] == [1, 2, 3] and rows.seqs[len(q)] == [1, 2]


def test_no_shared_prefix_decodes_everything():
    todo = {1: (0, [5, 6, 7]), 2: (0, [8, 6, 7]), 3: (0, [9])}
    rows = plan_rows(todo)
    check_plan(todo, rows)
    assert len(rows.token) == 7 and all(len(s) == 1 for s in rows.seqs)


def test_a_batch_of_one():
    todo = {1: (3, [1, 2, 3, 4, 5])}
    rows = plan_rows(todo)
    check_plan(todo, rows)
    assert rows.token == [4, 5] and rows.pos == [3, 4] and rows.last == {1: 1}


def test_items_that_are_prefixes_of_one_another():
    a = [1, 2, 3]
    todo = {1: (0, a), 2: (0, a + [4]), 3: (0, a + [4, 5]), 4: (0, a)}
    rows = plan_rows(todo)
    check_plan(todo, rows)
    assert len(rows.token) == 5
    # the shorter items read their logits at inner rows of the longer ones'; the same item twice shares
    assert rows.last[1] == rows.last[4] == 2 and rows.last[2] == 3 and rows.last[3] == 4
    assert rows.seqs[2] == [1, 2, 3, 4]


def test_sequences_share_only_after_the_same_kept_tokens():
    # 1 and 2 hold the same 3 tokens and want the same next ones: shared. 3 wants the same tokens
    # but holds fewer (it must decode position 3 itself); 4 holds other tokens at the same length.
    todo = {1: (3, [1, 2, 3, 4, 5]), 2: (3, [1, 2, 3, 4, 6]), 3: (2, [1, 2, 3, 4, 5]), 4: (3, [1, 2, 9, 4, 5])}
    rows = plan_rows(todo)
    check_plan(todo, rows)
    assert [sorted(s) for s in rows.seqs if 1 in s] == [[1, 2], [1]]
    assert not any(3 in s and len(s) > 1 for s in rows.seqs) and not any(4 in s and len(s) > 1 for s in rows.seqs)


def test_nothing_new_to_decode():
    assert plan_rows({}).token == []
    assert trie_size([]) == 0 and trie_size([[1, 2], [1, 2]]) == 2 and trie_size([[1], [1, 2], [3]]) == 3
