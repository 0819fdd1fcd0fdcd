"""`data import`: streaming reader, turn splitting, dependent-turn filter, image hashing, bad input."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from vlmdyn_cli.data.images import ImageHasher, check_relative
from vlmdyn_cli.data.importer import import_dataset, infer_source
from vlmdyn_cli.data.llava import iter_records
from vlmdyn_cli.data.turns import dependence_rule, dependent_reason, split_turns
from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.progress import RecordingReporter


# ---------------------------------------------------------------- fixtures

def conv(*turns: str) -> list[dict]:
    return [{"from": "human" if i % 2 == 0 else "gpt", "value": t} for i, t in enumerate(turns)]


@pytest.fixture
def image_root(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    for sub in ("coco/train2017", "gqa/images", "ocr_vqa/images", "vg/VG_100K"):
        (root / sub).mkdir(parents=True)
    Image.new("RGB", (32, 24), (200, 30, 30)).save(root / "coco/train2017/000001.jpg")
    shutil.copy(root / "coco/train2017/000001.jpg", root / "vg/VG_100K/1.jpg")  # same picture, two paths
    Image.new("RGB", (16, 16), (10, 10, 220)).save(root / "gqa/images/2354786.png")
    Image.new("RGB", (20, 30), (240, 240, 240)).save(root / "ocr_vqa/images/0439023483.jpg")
    return root


def records() -> list[dict]:
    return [
        {"id": "000000033471", "image": "coco/train2017/000001.jpg", "conversations": conv(
            "<image>\nWhat are the colors of the bus in the image?", "The bus is white and red.",
            "What feature can be seen on the back of the bus?", "An advertisement.",
            "Is the bus driving down the street or pulled off to the side?", "Driving down the street.")},
        {"id": "2354786", "image": "gqa/images/2354786.png", "conversations": conv(
            "Is the sky dark?\nAnswer the question using a single word or phrase.\n<image>", "Yes",
            "What is on the white wall?\nAnswer the question using a single word or phrase.", "Pipe",
            "Is it sunny?\nAnswer the question using a single word or phrase.", "No")},
        {"id": "0439023483", "image": "ocr_vqa/images/0439023483.jpg", "conversations": conv(
            "<image>\nWho wrote this book?", "Suzanne Collins",
            "What type of book is this?", "Teen & Young Adult",
            "Is this a sci-fi book?", "Yes")},
        {"id": "dependent-1", "image": "vg/VG_100K/1.jpg", "conversations": conv(
            "<image>\nWhat is the man holding?", "He is holding a red umbrella.",
            "Why might he be holding it?", "Because it is raining.")},
        {"id": "sharegpt-7", "conversations": conv(
            "Write a haiku about autumn.", "Leaves drift to the ground...",
            "Give a title for a poem about the sea.", "Tides of Silver.")},
    ]


def write_json(path: Path, recs, **kw) -> Path:
    path.write_text(json.dumps(recs, **kw), encoding="utf-8")
    return path


def table_counts(db) -> dict:
    return {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
            for t in ("datasets", "images", "conversations", "qa_pairs", "qa_pairs_fts_docsize")}


# ---------------------------------------------------------------- streaming reader

def test_reader_matches_json_load_with_odd_whitespace_and_tiny_chunks(tmp_path):
    recs = records() + [{"id": f"x{i}", "conversations": conv("Q " * i, "A " * (3 * i))} for i in range(40)]
    text = json.dumps(recs, indent=3, ensure_ascii=False)
    # legal but odd: CRLF, tabs, spaces before commas, whitespace before '[' and after ']', a BOM
    text = "\ufeff \r\n\t" + text.replace("},\n", "}\r\n\t  \n ,\t").replace("\n", "\r\n") + "\n\t \r\n"
    p = tmp_path / "odd.json"
    p.write_text(text, encoding="utf-8")
    for chunk in (1, 7, 64, 1 << 20):
        got = [r.data for r in iter_records(p, chunk_chars=chunk)]
        assert got == recs, chunk
    idx = [r.index for r in iter_records(p, chunk_chars=13)]
    assert idx == list(range(len(recs)))


def test_reader_handles_strings_longer_than_a_chunk(tmp_path):
    recs = [{"id": "long", "conversations": conv("x" * 5000 + " \"quoted\" \\ done", "y" * 3000)},
            {"id": "after", "conversations": conv("q", "a")}]
    p = write_json(tmp_path / "long.json", recs)
    assert [r.data for r in iter_records(p, chunk_chars=100)] == recs


def test_reader_streams_records_before_reading_the_rest(tmp_path):
    """Records are yielded one by one: the first ones arrive before a bad tail is even read."""
    good = [{"id": str(i), "conversations": conv("q", "a")} for i in range(500)]
    text = json.dumps(good)[:-1] + ", {\"id\": \"bad\", \"conversations\": [}]"
    p = tmp_path / "tail.json"
    p.write_text(text)
    it = iter_records(p, chunk_chars=256)
    first = [next(it).data["id"] for _ in range(3)]
    assert first == ["0", "1", "2"]
    with pytest.raises(BadInput) as ei:
        list(it)
    assert "record 500" in str(ei.value)


@pytest.mark.parametrize("text, expect", [
    ("", "is empty"),
    ("  \n\t ", "is empty"),
    ("[]", "empty list"),
    (" [ \n ] ", "empty list"),
    ('{"id": "1"}', "must hold a JSON list"),
    ('[{"id": "1", "conversations": []} {"id": "2"}]', "expected ',' or ']' after record 0"),
    ('[{"id": "1", "conversations": [}]', "malformed JSON in record 0"),
    ('[{"id": "1"}, {"id": "2", "conversations": [{"from": "human" "value": "q"}]}]',
     "malformed JSON in record 1"),
    ('[{"id": "1"}, ', "ends after record 0"),
    (' [ ', "ends before the first record"),
    ('[{"id": "1"}, {"id": "2"', "malformed JSON in record 1"),
    ('[{"id": "1"}] trailing', "unexpected data after the closing ']'"),
    ('[{"id": "1"}, 42]', "record 1 is not a JSON object"),
])
def test_reader_bad_json_says_where(tmp_path, text, expect):
    p = tmp_path / "bad.json"
    p.write_text(text)
    with pytest.raises(BadInput) as ei:
        list(iter_records(p, chunk_chars=8))
    assert expect in str(ei.value)


def test_not_utf8_is_bad_input(tmp_path):
    p = tmp_path / "latin1.json"
    p.write_bytes('[{"id": "caf\u00e9", "conversations": []}]'.encode("latin-1"))
    with pytest.raises(BadInput, match="is not UTF-8 text"):
        list(iter_records(p))


def test_malformed_json_error_gives_byte_offset_and_line(tmp_path):
    p = tmp_path / "bad.json"
    text = '[\n{"id": "é", "conversations": []},\n{"id": "2", "conversations": [1 2]}\n]'
    p.write_text(text, encoding="utf-8")
    with pytest.raises(BadInput) as ei:
        list(iter_records(p))
    msg = str(ei.value)
    # the decoder stops at the second number; 'é' takes two bytes, so the byte offset is one more
    char_pos = text.index("1 2") + 2
    assert len(text.encode()[: text.encode().index(b"1 2") + 2]) == char_pos + 1
    assert "record 1" in msg and f"byte offset {char_pos + 1}" in msg and "(line 3, column 33)" in msg


# ---------------------------------------------------------------- turn splitting

def test_split_turns_strips_image_marker_at_start_or_end():
    assert split_turns(conv("<image>\nWhat is it?", "A cat."), where="r", has_image=True) == [("What is it?", "A cat.")]
    assert split_turns(conv("What is it?\n<image>", "A cat.", " Where? ", " Mat "), where="r", has_image=True) == [
        ("What is it?", "A cat."), ("Where?", "Mat")]


@pytest.mark.parametrize("turns, expect", [
    ([{"from": "gpt", "value": "hi"}, {"from": "human", "value": "q"}], "roles out of order: turn 0"),
    (conv("q", "a") + [{"from": "human", "value": "q2"}, {"from": "human", "value": "q3"}],
     "roles out of order: turn 3"),
    (conv("q", "a", "q2"), "turn 2) has no gpt answer"),
    ([], "non-empty list"),
    ([{"from": "human"}, {"from": "gpt", "value": "a"}], "turn 0 has no text"),
    (conv("q", "a", "<image>\nq2", "a2"), "turn 2 contains <image>"),
])
def test_split_turns_rejects_bad_conversations(turns, expect):
    with pytest.raises(BadInput) as ei:
        split_turns(turns, where="record 3 (id 'abc')", has_image=True)
    assert expect in str(ei.value) and "record 3 (id 'abc')" in str(ei.value)


# ---------------------------------------------------------------- dependent-turn filter

DEPENDENT = [
    ("Why?", "bare-follow-up"),
    ("How so?", "bare-follow-up"),
    ("Why is that?", "bare-follow-up"),
    ("What does it mean?", "bare-follow-up"),
    ("What could be the reason for this?", "bare-follow-up"),
    ("Why might he be holding it?", "pronoun-only"),
    ("What color are they?", "pronoun-only"),
    ("Where did she put them?", "pronoun-only"),
    ("What about the other one?", "continuation"),
    ("And the woman next to him?", "continuation"),
    ("What else can you see?", "continuation"),
    ("Is there anything else on the table?", "continuation"),
    ("Which one is bigger?", "continuation"),
    ("Explain your answer.", "back-reference"),
    ("Can you elaborate on that?", "back-reference"),
    ("You mentioned a dog. What breed is it?", "back-reference"),
    ("Based on your previous answer, what should the cyclist do?", "back-reference"),
    ("Tell me more.", "back-reference"),
    ("Rewrite it in a formal tone.", "back-reference"),
    ("Can you make it shorter?", "back-reference"),
    ("continue", "back-reference"),
]

INDEPENDENT = [
    "What color is the bus?",
    "Where is the cat sitting?",
    "How many people are in the image?",
    "What might be the reason for the man to wear a helmet?",
    "What is the purpose of this gathering?",
    "What can be inferred about the weather from the image?",
    "Is it sunny?",
    "Is it daytime or nighttime?",
    "Are they playing frisbee?",
    "What are those cars parked next to?",
    "Which one of the two dogs is larger?",
    "Can you elaborate on the elements of the picture provided?",
    "What is going on in the scene?",
    "What might be the purpose of his actions?",
    "What type of vehicle is it?",
    "Make a list of the objects on the table.",
    # templated single questions packed into conversations: never dependent
    "What is this?\nAnswer the question using a single word or phrase.",
    "Why?\nAnswer the question using a single word or phrase.",
    "What color is it?\nAnswer the question using a single word or phrase.",
    "Which one is it?\nA. cat\nB. dog\nAnswer with the option's letter from the given choices directly.",
    "Please provide the bounding box coordinate of the region this sentence describes: man holding it.",
    "Please provide a short description for this region: [0.12, 0.34, 0.56, 0.78].",
    "Who wrote this book?",
    "What type of book is this?",
    "Is this a sci-fi book?",
    "Is this book related to Travel?",
]


@pytest.mark.parametrize("question, rule", DEPENDENT)
def test_dependent_questions_are_detected(question, rule):
    assert dependence_rule(question) == rule


@pytest.mark.parametrize("question", INDEPENDENT)
def test_independent_questions_are_kept(question):
    assert dependence_rule(question) is None


def test_conversation_level_rule_skips_the_first_turn():
    assert dependent_reason([("Why?", "a")]) is None  # a first question has nothing to depend on
    assert dependent_reason([("What is the man holding?", "An umbrella."), ("Is it red?", "Yes."),
                             ("Why?", "Rain.")]) == "bare-follow-up: turn 2"
    assert dependent_reason([("What color is the bus?", "Red."), ("Where is the bus parked?", "Street.")]) is None


# ---------------------------------------------------------------- images

def test_path_checks():
    assert check_relative("coco/train2017/1.jpg", where="r") == "coco/train2017/1.jpg"
    for bad, msg in (("../secret.jpg", "escapes"), ("coco/../../x.jpg", "escapes"), ("/etc/passwd", "absolute"),
                     ("C:\\x.jpg", "absolute"), ("", "non-empty")):
        with pytest.raises(BadInput, match=msg):
            check_relative(bad, where="r")


def test_hasher_same_bytes_same_hash_and_reads_size(image_root):
    with ImageHasher(image_root, workers=2) as h:
        out = h.hash_many([("coco/train2017/000001.jpg", "a"), ("vg/VG_100K/1.jpg", "b"),
                           ("gqa/images/2354786.png", "c")])
    assert out["coco/train2017/000001.jpg"].sha256 == out["vg/VG_100K/1.jpg"].sha256
    assert out["gqa/images/2354786.png"].sha256 != out["vg/VG_100K/1.jpg"].sha256
    assert (out["gqa/images/2354786.png"].width, out["gqa/images/2354786.png"].height) == (16, 16)
    assert out["gqa/images/2354786.png"].n_bytes == (image_root / "gqa/images/2354786.png").stat().st_size


def test_symlink_leaving_the_root_is_rejected(tmp_path, image_root):
    outside = tmp_path / "outside.png"
    Image.new("RGB", (4, 4)).save(outside)
    os.symlink(outside, image_root / "coco/link.png")
    with ImageHasher(image_root, workers=1) as h, pytest.raises(BadInput, match="outside the image root"):
        h.hash_many([("coco/link.png", "record 0 (id 'x')")])


# ---------------------------------------------------------------- import end to end

def test_import_counts_filter_images_and_sources(tmp_path, db, image_root):
    p = write_json(tmp_path / "mix.json", records())
    rep = RecordingReporter()
    res = import_dataset(db, p, image_root, name="mix", reporter=rep, workers=2)
    assert (res.n_conversations, res.n_kept, res.n_dropped) == (5, 4, 1)
    assert res.dropped_by_reason == {"pronoun-only": 1}
    assert res.n_qa == 3 + 3 + 3 + 2
    # the coco and vg paths hold the same picture: one images row
    assert res.n_images == 3 and db.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 3
    ids = dict(db.execute("SELECT image_path, image_id FROM conversations WHERE image_path IS NOT NULL"))
    assert ids["coco/train2017/000001.jpg"] == ids["vg/VG_100K/1.jpg"]
    assert res.by_source == {"coco": 1, "gqa": 1, "ocr_vqa": 1, "vg": 1, "text-only": 1}
    dropped = db.execute("SELECT source_id, kept, drop_reason FROM conversations WHERE kept = 0").fetchall()
    assert dropped == [("dependent-1", 0, "pronoun-only: turn 1")]
    # QA pairs only for kept conversations, turn by turn, <image> removed, image id carried
    assert db.execute("SELECT COUNT(*) FROM qa_pairs q JOIN conversations c ON c.id = q.conversation_id "
                      "WHERE c.kept = 0").fetchone()[0] == 0
    rows = db.execute("SELECT q.turn, q.question, q.answer, q.image_id = c.image_id FROM qa_pairs q "
                      "JOIN conversations c ON c.id = q.conversation_id WHERE c.source_id = '2354786' "
                      "ORDER BY q.turn").fetchall()
    assert rows[0] == (0, "Is the sky dark? Answer the question using a single word or phrase.", "Yes", 1)
    assert [r[0] for r in rows] == [0, 1, 2]
    text_only = db.execute("SELECT image_id, image_path, n_turns FROM conversations WHERE source = 'text-only'")
    assert text_only.fetchall() == [(None, None, 2)]
    # the dataset row and the FTS index are filled; progress was reported in conversations
    ds = db.execute("SELECT name, n_conversations, n_kept, n_qa FROM datasets").fetchall()
    assert ds == [("mix", 5, 4, 11)]
    assert db.execute("SELECT COUNT(*) FROM qa_pairs_fts WHERE qa_pairs_fts MATCH 'advertisement'").fetchone()[0] == 1
    assert table_counts(db)["qa_pairs_fts_docsize"] == 11
    # the row-by-row FTS trigger is suspended during the import and restored afterwards
    assert db.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'qa_pairs_ai'").fetchone()[0] == 1
    with db.atomic():
        db.execute("INSERT INTO qa_pairs(dataset_id, conversation_id, turn, question, answer) "
                   "VALUES (1, 1, 99, 'zebra crossing?', 'yes')")
    assert db.execute("SELECT COUNT(*) FROM qa_pairs_fts WHERE qa_pairs_fts MATCH 'zebra'").fetchone()[0] == 1
    finish = [e for e in rep.events if e[0] == "finish" and e[1].startswith("importing")]
    assert finish == [("finish", "importing mix", 5)]


def test_truth_and_source_fields(tmp_path, db, image_root):
    recs = [{"id": "s1", "image": "gqa/images/2354786.png", "source": "synth", "conversations": conv(
        "<image>\nWhat shape is the blue object?", "Square.", "Where is the square?", "In the centre."),
        "vlmdyn_truth": [{"category": "Object", "subcategory": None}, {"category": "Spatial"}]}]
    import_dataset(db, write_json(tmp_path / "s.json", recs), image_root)
    assert db.execute("SELECT source FROM conversations").fetchone()[0] == "synth"
    assert db.execute("SELECT true_category, true_subcategory FROM qa_pairs ORDER BY turn").fetchall() == [
        ("Object", None), ("Spatial", None)]
    bad = [dict(recs[0], vlmdyn_truth=[{"category": "Object"}])]
    with pytest.raises(BadInput, match="one entry per QA turn"):
        import_dataset(db, write_json(tmp_path / "s2.json", bad), image_root)


def test_infer_source():
    assert infer_source("coco/train2017/1.jpg") == "coco"
    assert infer_source("ocr_vqa/images/1.jpg") == "ocr_vqa"
    assert infer_source("textvqa/train_images/1.jpg") == "textvqa"
    assert infer_source("sam/images/1.jpg") == "sam"
    assert infer_source("1.jpg") == "unknown"
    assert infer_source(None) == "text-only"


def test_reimport_is_a_noop_and_name_clash_is_bad_input(tmp_path, db, image_root):
    p = write_json(tmp_path / "mix.json", records())
    first = import_dataset(db, p, image_root)
    before = table_counts(db)
    again = import_dataset(db, p, image_root)
    assert again.already_imported and again.dataset_id == first.dataset_id and again.n_qa == first.n_qa
    assert table_counts(db) == before
    other = write_json(tmp_path / "other.json", records()[:2])
    with pytest.raises(BadInput, match="a dataset named 'mix' already exists"):
        import_dataset(db, other, image_root, name="mix")
    assert table_counts(db) == before
    second = import_dataset(db, other, image_root, name="mix-2")
    # the second dataset reuses the already stored images (content-addressed)
    assert second.n_new_images == 0 and second.n_images == 2
    assert table_counts(db)["images"] == before["images"]


def test_no_images_mode_keys_by_path_without_reading_files(tmp_path, db):
    recs = records()
    res = import_dataset(db, write_json(tmp_path / "mix.json", recs), tmp_path / "does-not-exist",
                         hash_images=False)
    assert res.image_identity == "path" and res.n_images == 4  # same picture, two paths: two images here
    keys = [r[0] for r in db.execute("SELECT sha256 FROM images")]
    assert all(k.startswith("path:") for k in keys) and len(set(keys)) == 4
    assert db.execute("SELECT COUNT(*) FROM qa_pairs WHERE image_id IS NULL").fetchone()[0] == 2  # text-only
    bad = [{"id": "x", "image": "../up.jpg", "conversations": conv("<image>\nq", "a")}]
    with pytest.raises(BadInput, match="escapes the image root"):
        import_dataset(db, write_json(tmp_path / "bad.json", bad), tmp_path, hash_images=False)


def test_many_records_across_batches(tmp_path, db, image_root):
    import vlmdyn_cli.data.importer as importer

    recs = []
    paths = ["coco/train2017/000001.jpg", "gqa/images/2354786.png", None, "vg/VG_100K/1.jpg"]
    for i in range(2 * importer.BATCH + 37):
        r = {"id": f"r{i}", "conversations": conv(f"<image>\nWhat is object {i}?" if paths[i % 4] else "Say hi.",
                                                      "A thing.", "What colour is the table?", "Brown.")}
        if paths[i % 4]:
            r["image"] = paths[i % 4]
        recs.append(r)
    res = import_dataset(db, write_json(tmp_path / "many.json", recs), image_root, workers=2)
    assert res.n_conversations == len(recs) and res.n_qa == 2 * len(recs) and res.n_images == 2
    got = db.execute("SELECT idx, source_id FROM conversations ORDER BY id").fetchall()
    assert got == [(i, f"r{i}") for i in range(len(recs))]


# ---------------------------------------------------------------- bad input through the CLI: exit 2, DB unchanged

def _bad_cases(tmp_path: Path, image_root: Path) -> dict[str, tuple[Path, str]]:
    (image_root / "coco/train2017/broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    good = records()
    cases = {
        "malformed": ('[{"id": "a", "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", '
                      '"value": "a"}]}, {"id": "b" "conversations": []}]',
                      "malformed JSON in record 1"),
        "empty-file": ("", "is empty"),
        "empty-list": ("[ ]", "empty list"),
        "no-conversations": (good[:2] + [{"id": "nc", "image": "gqa/images/2354786.png"}],
                             "record 2 (id 'nc'): missing 'conversations'"),
        "roles": (good[:1] + [{"id": "ro", "conversations": conv("q", "a")[::-1]}],
                  "record 1 (id 'ro'): roles out of order"),
        "missing-image": (good[:3] + [{"id": "mi", "image": "coco/train2017/nope.jpg",
                                        "conversations": conv("<image>\nq", "a")}] + good[3:],
                          "record 3 (id 'mi'): image 'coco/train2017/nope.jpg' not found"),
        "corrupt-image": (good + [{"id": "ci", "image": "coco/train2017/broken.jpg",
                                   "conversations": conv("<image>\nq", "a")}],
                          "record 5 (id 'ci'): image 'coco/train2017/broken.jpg' is not a valid image"),
        "escape": (good[:1] + [{"id": "es", "image": "../outside.jpg", "conversations": conv("<image>\nq", "a")}],
                   "record 1 (id 'es'): image path '../outside.jpg' escapes the image root"),
        "absolute": (good[:1] + [{"id": "ab", "image": str(image_root / "gqa/images/2354786.png"),
                                  "conversations": conv("<image>\nq", "a")}], "is absolute"),
        "marker-no-image": ([{"id": "mn", "conversations": conv("<image>\nq", "a")}], "has no 'image'"),
    }
    out = {}
    for name, (content, msg) in cases.items():
        p = tmp_path / f"{name}.json"
        p.write_text(content if isinstance(content, str) else json.dumps(content))
        out[name] = (p, msg)
    return out


def test_each_bad_input_exits_2_and_leaves_db_unchanged(cli, tmp_path, db_path, image_root):
    ok = write_json(tmp_path / "ok.json", records())
    r = cli("data", "import", ok, "--images", image_root, "--db", db_path, "--quiet")
    assert r.code == 0, r.err
    from vlmdyn_cli.store import open_db

    def snapshot():
        d = open_db(db_path)
        try:
            return (table_counts(d), d.execute("SELECT * FROM datasets").fetchall(),
                    d.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall())
        finally:
            d.close()

    before = snapshot()
    for name, (path, msg) in _bad_cases(tmp_path, image_root).items():
        r = cli("data", "import", path, "--images", image_root, "--db", db_path, "--quiet")
        assert r.code == 2, (name, r.err)
        assert msg in r.err, (name, r.err)
        assert "Traceback" not in r.err
        assert snapshot() == before, name


def test_bad_record_after_many_good_ones_rolls_back_everything(tmp_path, db, image_root):
    import vlmdyn_cli.data.importer as importer

    recs = [{"id": f"g{i}", "conversations": conv("What is shown?", "A cat.")} for i in range(importer.BATCH * 2 + 5)]
    recs.append({"id": "late", "conversations": conv("q", "a", "q2")})
    before = table_counts(db)
    with pytest.raises(BadInput, match=f"record {len(recs) - 1} \\(id 'late'\\)"):
        import_dataset(db, write_json(tmp_path / "late.json", recs), image_root)
    assert table_counts(db) == before


def test_cli_summary_and_json(cli, tmp_path, db_path, image_root):
    p = write_json(tmp_path / "mix.json", records(), indent=2)
    r = cli("data", "import", p, "--images", image_root, "--db", db_path, "--json", "--workers", "2")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert out["n_conversations"] == 5 and out["n_kept"] == 4 and out["n_qa"] == 11
    assert out["dropped_by_reason"] == {"pronoun-only": 1} and out["conversations_per_s"] > 0
    assert "importing mix" in r.err  # progress on stderr, never on stdout
    r = cli("data", "import", p, "--images", image_root, "--db", db_path)
    assert r.code == 0 and "already imported" in r.err and "conversations" in r.out
    r = cli("data", "list", "--db", db_path, "--json")
    assert r.code == 0 and [d["name"] for d in json.loads(r.out)] == ["mix"]
    r = cli("data", "import", tmp_path / "nope.json", "--db", db_path)
    assert r.code == 2 and "does not exist" in r.err


def test_interrupted_import_leaves_nothing_and_reruns_cleanly(tmp_path, db, image_root):
    """Ctrl-C in the middle (raised from the progress callback) rolls the whole import back."""
    import vlmdyn_cli.data.importer as importer

    class Interrupting(RecordingReporter):
        def _update(self, h):
            super()._update(h)
            if h.desc.startswith("importing") and h.done >= importer.BATCH:
                raise KeyboardInterrupt

    recs = [{"id": f"t{i}", "conversations": conv(f"What is item {i}?", "A cat.")}
            for i in range(importer.BATCH * 3)]
    p = write_json(tmp_path / "big.json", recs)
    before = table_counts(db)
    schema = db.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()
    with pytest.raises(KeyboardInterrupt):
        import_dataset(db, p, image_root, reporter=Interrupting())
    assert table_counts(db) == before
    assert db.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall() == schema
    res = import_dataset(db, p, image_root)
    assert res.n_conversations == len(recs) and not res.already_imported
    assert table_counts(db)["qa_pairs_fts_docsize"] == len(recs)


class OtherWriterFirst(RecordingReporter):
    """When our import's progress task starts (its pre-checks done, the write lock not yet taken), another
    connection imports the same file ``as_name`` (None: the default name) and commits."""

    def __init__(self, db_path, path, image_root, as_name=None):
        super().__init__()
        self.other = (db_path, path, image_root, as_name)
        self.done = False

    def _start(self, h):
        super()._start(h)
        if h.desc.startswith("importing") and not self.done:
            from vlmdyn_cli.store import open_db

            self.done = True
            db_path, path, image_root, as_name = self.other
            other = open_db(db_path)
            import_dataset(other, path, image_root, name=as_name)
            other.close()


def test_concurrent_import_of_the_same_content_is_not_duplicated(tmp_path, db, db_path, image_root):
    """Another process commits the same file between our pre-check and our transaction: we return its row."""
    p = write_json(tmp_path / "mix.json", records())
    res = import_dataset(db, p, image_root, name="mine", reporter=OtherWriterFirst(db_path, p, image_root, "theirs"))
    assert res.already_imported and res.name == "theirs"
    assert [r[0] for r in db.execute("SELECT name FROM datasets")] == ["theirs"]
    assert table_counts(db)["conversations"] == 5


def test_concurrent_import_of_the_same_file_under_the_same_name_is_a_no_op(tmp_path, db, db_path, image_root):
    """Two `data import FILE` of one file at once (the same default name): the one that commits second
    finds the first's dataset, not a name clash (on main it failed: "a dataset named 'mix' already exists")."""
    p = write_json(tmp_path / "mix.json", records())
    res = import_dataset(db, p, image_root, reporter=OtherWriterFirst(db_path, p, image_root))
    assert res.already_imported and res.name == "mix"
    assert [r[0] for r in db.execute("SELECT name FROM datasets")] == ["mix"]
    assert table_counts(db)["conversations"] == 5


def test_ctrl_c_of_the_cli_says_interrupted_exits_130_and_keeps_nothing(tmp_path):
    """A real SIGINT to `vlmdyn data import` mid-file: exit 130 with the 'interrupted: rerun' line (typer
    swallowed the KeyboardInterrupt into a silent 130 on main) and nothing stored (the rerun after an
    interruption is test_interrupted_import_leaves_nothing_and_reruns_cleanly)."""
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    from helpers_procs import reaped

    n = 150_000          # several seconds of importing even on a fast machine
    p = tmp_path / "big.json"
    p.write_text("[" + ",".join(json.dumps({"id": f"t{i}", "conversations": conv(f"What is item {i}?", "A cat.")})
                                for i in range(n)) + "]")
    db = tmp_path / "exp.db"
    cmd = [sys.executable, "-m", "vlmdyn_cli", "data", "import", str(p), "--no-images", "--db", str(db)]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    with reaped(proc):
        deadline = time.monotonic() + 60
        while not Path(f"{db}-wal").exists() and time.monotonic() < deadline:   # the database is open
            time.sleep(0.05)
        time.sleep(1.0)                           # the import is under way (it takes several seconds)
        proc.send_signal(signal.SIGINT)
        err = proc.stderr.read()
        assert proc.wait(60) == 130, err
    assert "interrupted: rerun the same command" in err and "Traceback" not in err
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT count(*) FROM datasets").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM conversations").fetchone() == (0,)


@pytest.mark.parametrize("kind", ["fifo", "symlink-loop", "over-1-GiB"])
def test_an_image_that_is_not_a_readable_regular_file_is_bad_input(kind, cli, tmp_path, db_path, image_root):
    """On main a FIFO image blocked the import forever (the hasher opened it), a symlink loop was a
    RuntimeError (exit 1), and a huge file was read whole into memory to be hashed."""
    from vlmdyn_cli.data.images import MAX_IMAGE_BYTES

    bad = image_root / "bad.png"
    if kind == "fifo":
        os.mkfifo(bad)
    elif kind == "symlink-loop":
        os.symlink(image_root / "loop.png", bad)
        os.symlink(bad, image_root / "loop.png")
    else:
        with open(bad, "wb") as f:          # sparse: no disk space used
            f.truncate(MAX_IMAGE_BYTES + 1)
    recs = records()[:1] + [{"id": "bad", "image": "bad.png", "conversations": conv("<image>\nWhat is it?", "A cat.")}]
    p = write_json(tmp_path / "d.json", recs)
    r = cli("data", "import", p, "--images", image_root, "--db", db_path)
    assert r.code == 2, r.err
    want = {"fifo": "is not a regular file", "symlink-loop": "is a symlink loop", "over-1-GiB": "the limit is"}[kind]
    assert "record 1 (id 'bad'): image 'bad.png'" in r.err and want in r.err, r.err
    assert "Traceback" not in r.err
