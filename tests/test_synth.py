"""The synthetic multitask benchmark (`vlmdyn data synth`): format, mix, determinism, truthful answers."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from vlmdyn_cli.data.categories import CATEGORIES, PAPER_MIX, SUBCATEGORIES
from vlmdyn_cli.data.synth import SINGLE_USE, generate
from vlmdyn_cli.data.synth_keys import EDITION, KINDS
from vlmdyn_cli.data.synth_books import GENRES
from vlmdyn_cli.data.synth_questions import TEMPLATES
from vlmdyn_cli.data.synth_scenes import COLORS
from vlmdyn_cli.errors import BadInput

BOX = re.compile(r"^\[(\d\.\d\d), (\d\.\d\d), (\d\.\d\d), (\d\.\d\d)\]$")


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "b"
    res = generate(out, n_images=400, seed=3, workers=1)
    return res, json.loads(res.json_path.read_text())


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != "synth_meta.json":
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def _turns(records):
    for r in records:
        conv = r["conversations"]
        for i, truth in enumerate(r["vlmdyn_truth"]):
            yield r, conv[2 * i]["value"], conv[2 * i + 1]["value"], truth


def test_records_are_valid_llava_conversations(bench):
    res, records = bench
    assert res.n_images == 400 and len(records) == res.n_conversations
    ids = [r["id"] for r in records]
    assert len(set(ids)) == len(ids)
    for r in records:
        conv = r["conversations"]
        assert [t["from"] for t in conv] == ["human", "gpt"] * (len(conv) // 2)
        assert 3 <= len(conv) // 2 <= 6 and len(r["vlmdyn_truth"]) == len(conv) // 2
        first = conv[0]["value"]
        assert first.startswith("<image>\n") or first.endswith("\n<image>")
        assert all("<image>" not in t["value"] for t in conv[1:])
        assert not r["image"].startswith("/") and ".." not in r["image"]
        questions = [conv[i]["value"].replace("<image>", "").strip() for i in range(0, len(conv), 2)]
        assert len(set(questions)) == len(questions), "a question repeats inside one conversation"
        for t in r["vlmdyn_truth"]:
            assert t["category"] in CATEGORIES
            assert t["subcategory"] is None or t["subcategory"] in SUBCATEGORIES[t["category"]]


def test_images_exist_once_per_path_some_used_once_the_rest_re_used_4_to_5_times(bench):
    res, records = bench
    per_image = Counter(r["image"] for r in records)
    assert len(per_image) == 400
    assert set(per_image.values()) <= {1, 4, 5}
    single = sum(v == 1 for v in per_image.values()) / len(per_image)
    assert abs(single - SINGLE_USE) < 0.08
    for rel in list(per_image)[:50]:
        with Image.open(res.images_dir / rel) as im:
            assert im.format == "PNG" and im.size == (64, 64) and im.mode == "RGB"
    assert len(list((res.images_dir).rglob("*.png"))) == 400


def _named(records):
    """image -> [(conversation id, question, answer, template)] of its named-fact turns."""
    out: dict[str, list] = {}
    for r, q, a, t in _turns(records):
        if t["template"] in KINDS:
            out.setdefault(r["image"], []).append((r["id"], q.replace("<image>", "").strip(), a, t["template"]))
    return out


def _name_in(question: str, kind) -> str:
    for p in kind.phrasings:
        m = re.fullmatch(re.escape(p).replace(re.escape("{k}"), r"(\w+)"), question)
        if m:
            return m.group(1)
    raise AssertionError(f"not one of {kind.id}'s phrasings: {question!r}")


def test_every_conversation_asks_its_pictures_named_fact_once_in_other_words(bench):
    """The memorisation lever (synth_keys): one hidden fact per picture, the same answer in every
    conversation about it, a new phrasing each time (so pair de-duplication keeps the others)."""
    _, records = bench
    named = _named(records)
    per_conv = Counter(cid for turns in named.values() for cid, *_ in turns)
    assert set(per_conv) == {r["id"] for r in records} and set(per_conv.values()) == {1}
    names = {}
    for img, turns in named.items():
        assert len({a for _, _, a, _ in turns}) == 1 and len({t for *_, t in turns}) == 1
        assert len({q for _, q, _, _ in turns}) == len(turns), f"{img}: a phrasing repeats"
        kind = KINDS[turns[0][3]]
        assert turns[0][2] in kind.answers
        assert (kind is EDITION) == img.startswith("books/")
        names.setdefault(_name_in(turns[0][1], kind), set()).add((img, turns[0][2]))
    # a made-up name belongs to one picture; a well-known one always carries the same answer
    for name, imgs in names.items():
        known = next((k.well_known for k in KINDS.values() if name in k.well_known), None)
        if known is None:
            assert len(imgs) == 1, name
        else:
            assert {a for _, a in imgs} == {known[name]}
    assert sum(len(v) > 1 for v in names.values()) > 5     # well-known names recur


def test_rules_categoriser_puts_named_facts_in_their_category(bench):
    from vlmdyn_cli.data.categories import get_categorizer

    _, records = bench
    turns = [(q, t) for turns in _named(records).values() for _, q, _, t in turns]
    labels = get_categorizer("rules").categorize([q for q, _ in turns])
    wrong = [(q, l.category) for (q, t), l in zip(turns, labels)
             if (l.category, l.subcategory) != (KINDS[t].category, KINDS[t].subcategory)]
    assert len(wrong) <= 0.01 * len(turns), wrong[:5]


def test_category_mix_is_close_to_the_paper(bench):
    res, records = bench
    counts = Counter(t["category"] for *_, t in _turns(records))
    n = sum(counts.values())
    assert n == res.n_qa
    for c in CATEGORIES:
        assert abs(100 * counts[c] / n - PAPER_MIX[c]) < 2.5, (c, counts[c] / n)
    meta = json.loads(res.meta_path.read_text())
    assert meta["mix_percent"] == res.mix and meta["params"]["seed"] == 3
    # both sub-categories well represented
    for cat in ("Bounding", "OCR"):
        subs = Counter(t["subcategory"] for *_, t in _turns(records) if t["category"] == cat)
        assert set(subs) == set(SUBCATEGORIES[cat]) and min(subs.values()) > 0.3 * sum(subs.values())


def test_every_template_is_used(bench):
    _, records = bench
    used = {t["template"] for *_, t in _turns(records)}
    assert used == {t.id for t in TEMPLATES} | set(KINDS)


def _close(rgb, name, tol=40):
    return all(abs(a - b) <= tol for a, b in zip(rgb, COLORS[name]))


def test_box_answers_match_the_pixels(bench):
    """A bbox answer names a region whose centre has the object's colour and whose outside is background."""
    res, records = bench
    checked = 0
    for r, q, a, t in _turns(records):
        if t["template"] != "box.bbox":
            continue
        m = BOX.match(a)
        assert m, a
        x1, y1, x2, y2 = (float(v) * 64 for v in m.groups())
        assert 0 <= x1 < x2 <= 64 and 0 <= y1 < y2 <= 64
        color = next(c for c in COLORS if re.search(rf"\b{c}\b", q))
        with Image.open(res.images_dir / r["image"]) as im:
            px = im.load()
            assert _close(px[int((x1 + x2) / 2), int((y1 + y2) / 2)], color), (q, a)
            bg = px[0, 0]
            left = px[max(0, round(x1) - 1), int((y1 + y2) / 2)]
            assert max(abs(u - v) for u, v in zip(left, bg)) < 20, (q, a, left, bg)
        checked += 1
    assert checked > 100


def test_describe_answers_match_the_pixels(bench):
    res, records = bench
    checked = 0
    for r, q, a, t in _turns(records):
        if t["template"] != "box.describe":
            continue
        m = re.search(r"\[(\d\.\d\d), (\d\.\d\d), (\d\.\d\d), (\d\.\d\d)\]", q)
        x1, y1, x2, y2 = (float(v) * 64 for v in m.groups())
        color, shape = a.split()
        with Image.open(res.images_dir / r["image"]) as im:
            assert _close(im.getpixel((int((x1 + x2) / 2), int((y1 + y2) / 2))), color), (q, a)
        checked += 1
    assert checked > 80


def test_genre_is_visible_in_the_cover_colour(bench):
    """OCR semantic answers are predictable from the cover: the genre's colour fills the background."""
    res, records = bench
    for r, q, a, t in _turns(records):
        if t["template"] == "ocr.genre" and a in GENRES:
            with Image.open(res.images_dir / r["image"]) as im:
                rgb = im.getpixel((60, 45))  # right margin, between emblem and author
            assert all(abs(u - v) <= 20 for u, v in zip(rgb, GENRES[a][0])), (r["image"], a, rgb)


def test_book_facts_are_consistent_across_conversations(bench):
    """Title and author of one image are the same in every conversation (memorisable per image)."""
    _, records = bench
    facts: dict[tuple[str, str], set] = {}
    for r, q, a, t in _turns(records):
        if t["template"] in ("ocr.title", "ocr.author"):
            facts.setdefault((r["image"], t["template"]), set()).add(a)
    assert facts and all(len(v) == 1 for v in facts.values())
    repeated = Counter(img for (img, _), _v in facts.items())
    assert any(v == 2 for v in repeated.values())


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    a = generate(tmp_path / "a", n_images=40, seed=7, workers=1)
    b = generate(tmp_path / "b", n_images=40, seed=7, workers=2)
    c = generate(tmp_path / "c", n_images=40, seed=8, workers=1)
    assert _digest(a.out_dir) == _digest(b.out_dir)
    assert _digest(a.out_dir) != _digest(c.out_dir)


def test_same_seed_same_data_in_every_process(tmp_path):
    """String hashing is salted per process (PYTHONHASHSEED): no choice may depend on set order."""
    import os
    import subprocess
    import sys

    code = ("import sys; from vlmdyn_cli.data.synth import generate; "
            "generate(sys.argv[1], n_images=60, seed=7, workers=1)")
    for salt in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": salt}
        subprocess.run([sys.executable, "-c", code, str(tmp_path / salt)], check=True, env=env,
                       cwd=Path(__file__).resolve().parents[1])
    assert (tmp_path / "1" / "llava.json").read_bytes() == (tmp_path / "2" / "llava.json").read_bytes()


def test_parallel_rendering_gives_the_same_images(tmp_path, monkeypatch):
    from vlmdyn_cli.data import synth as synth_mod

    monkeypatch.setattr(synth_mod, "PARALLEL_FROM", 100)  # use the process pool for a small set
    a = generate(tmp_path / "a", n_images=150, seed=1, workers=1)
    b = generate(tmp_path / "b", n_images=150, seed=1, workers=2)
    assert _digest(a.out_dir) == _digest(b.out_dir)


def test_rerun_is_a_no_op_unless_forced_or_changed(tmp_path):
    out = tmp_path / "s"
    first = generate(out, n_images=20, seed=0)
    assert not first.skipped
    again = generate(out, n_images=20, seed=0)
    assert again.skipped and again.n_qa == first.n_qa
    assert not generate(out, n_images=20, seed=0, force=True).skipped
    changed = generate(out, n_images=25, seed=0)
    assert not changed.skipped and changed.n_images == 25
    smaller = generate(out, n_images=12, seed=0)  # images of the bigger run do not linger
    assert len(list(smaller.images_dir.rglob("*.png"))) == 12
    generate(out, n_images=25, seed=0)
    # an interrupted run (no meta written) is redone
    (out / "synth_meta.json").unlink()
    assert not generate(out, n_images=25, seed=0).skipped


def test_bad_parameters_are_refused(tmp_path):
    with pytest.raises(BadInput, match="at least 10"):
        generate(tmp_path / "x", n_images=3)
    with pytest.raises(BadInput, match="32 px"):
        generate(tmp_path / "x", n_images=20, image_size=16)
    (tmp_path / "file").write_text("x")
    with pytest.raises(BadInput, match="not a folder"):
        generate(tmp_path / "file", n_images=20)


def test_cli_writes_and_reports_json(cli, tmp_path):
    r = cli("data", "synth", "--out", tmp_path / "cli", "--images", "30", "--seed", "2", "--json")
    assert r.code == 0, r.err
    d = json.loads(r.out)
    assert d["n_images"] == 30 and not d["skipped"]
    assert Path(d["json_path"]).is_file()
    assert abs(sum(d["mix"].values()) - 100) < 0.1
    r2 = cli("data", "synth", "--out", tmp_path / "cli", "--images", "30", "--seed", "2", "--json")
    assert r2.code == 0 and json.loads(r2.out)["skipped"] is True
    bad = cli("data", "synth", "--out", tmp_path / "cli2", "--images", "2")
    assert bad.code == 2 and "at least 10" in bad.err
    assert not (tmp_path / "cli2" / "llava.json").exists()
