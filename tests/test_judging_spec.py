"""Judge specs as data: built-ins, user files, hashes, bad specs, the backend registry."""

import json

import pytest

from helpers_judging import write_spec
from vlmdyn_cli.errors import BadInput, MissingDependency
from vlmdyn_cli.judging import backends
from vlmdyn_cli.judging.backends.base import Item
from vlmdyn_cli.judging.spec import builtin_names, load_spec

BUILTINS = {"gpt-4o-mini", "gpt-4o-mini-norubric", "local", "gemma-local", "rules", "cascade"}


def test_builtins_load_and_have_distinct_hashes():
    assert BUILTINS <= set(builtin_names())
    specs = {n: load_spec(n) for n in BUILTINS}
    assert len({s.hash for s in specs.values()}) == len(BUILTINS)
    assert specs["gpt-4o-mini"].output == "rubric-dict" and specs["gpt-4o-mini"].backend == "openai"
    assert specs["gpt-4o-mini-norubric"].output == "verdict-dict"
    assert [s.name for s in specs["cascade"].stages] == ["rules", "lexical"]   # the offline default: no stage at chance
    assert load_spec("lexical").backend == "fitted"
    assert specs["gemma-local"].score_mode == "only" and "text_template" in specs["gemma-local"].templates


def test_rubric_prompt_puts_fixed_text_first_and_item_last():
    spec = load_spec("gpt-4o-mini")
    a = spec.render(Item("k1", "What colour?", "red", "blue"))
    b = spec.render(Item("k2", "How many {answer}?", "3", "three {question}"))
    assert a.messages[0] == b.messages[0]            # identical system prompt: the reusable prefix
    assert "MS" in a.messages[0]["content"] and "{'p': 'yes', 'MS': 5, 'MD': 4, 'H': 3}" in a.messages[0]["content"]
    assert a.messages[-1]["content"].endswith("Prediction: blue")
    # placeholders inside the item stay literal (one-pass substitution)
    assert "How many {answer}?" in b.messages[-1]["content"] and "three {question}" in b.messages[-1]["content"]
    assert (a.key, a.score_only, a.verdict_prefix) == ("k1", False, "{'p': '")


def test_hash_covers_template_text(tmp_path):
    path = write_spec(tmp_path)
    h1 = load_spec(path).hash
    (tmp_path / "sys.txt").write_text("A different rubric.\n")
    assert load_spec(path).hash != h1
    s = load_spec(path)
    assert s.with_overrides(model="other").hash != s.hash
    assert s.with_overrides(options={"base_url": "http://127.0.0.1:9"}).hash != s.hash
    assert s.with_overrides().hash == s.hash


def test_unknown_spec_name_lists_builtins(cli, tmp_path):
    r = cli("judge", "--input", tmp_path / "x.jsonl", "--judge", "gpt4o-mini", "--db", tmp_path / "d.db")
    assert r.code == 2
    assert "unknown judge spec 'gpt4o-mini'" in r.err and "did you mean 'gpt-4o-mini'" in r.err
    assert "rules" in r.err and "cascade" in r.err


def test_unknown_spec_field_did_you_mean(cli, tmp_path):
    path = write_spec(tmp_path, extra='temperture = 0\n')
    r = cli("judge", "--input", tmp_path / "x.jsonl", "--judge", path, "--db", tmp_path / "d.db")
    assert r.code == 2 and "unknown field 'temperture'" in r.err
    path = write_spec(tmp_path, extra='[decoding]\nmax_token = 3\n')
    with pytest.raises(BadInput, match="did you mean 'max_tokens'"):
        load_spec(path)


def test_bad_output_format_and_missing_template(tmp_path):
    with pytest.raises(BadInput, match="output 'json'"):
        load_spec(write_spec(tmp_path, output="json"))
    p = tmp_path / "t.toml"
    p.write_text('name = "t"\nbackend = "openai"\nsystem_template = "nope.txt"\n')
    with pytest.raises(BadInput, match="template file nope.txt not found"):
        load_spec(str(p))
    with pytest.raises(BadInput, match="does not exist"):
        load_spec(str(tmp_path / "missing.toml"))


def test_secrets_are_refused_in_specs(tmp_path):
    with pytest.raises(BadInput, match="looks like a secret"):
        load_spec(write_spec(tmp_path, extra='[options]\napi_key = "abc"\n'))
    with pytest.raises(BadInput, match="holds what looks like a credential"):
        load_spec(write_spec(tmp_path, extra='[options]\nbase_url = "sk-abcdefghijklmnopqrstuvwxyz"\n'))
    s = load_spec(write_spec(tmp_path, extra='[options]\napi_key_env = "MY_KEY"\n'))
    assert s.options["api_key_env"] == "MY_KEY"
    assert "MY_KEY" in json.dumps(s.record())   # the variable's NAME is stored, never a value


def test_registry_unknown_backend_lists_valid_ones(tmp_path):
    spec = load_spec(write_spec(tmp_path, backend="ollama"))
    with pytest.raises(BadInput) as e:
        backends.create_backend(spec)
    assert "unknown judge backend 'ollama'" in str(e.value)
    for b in ("openai", "llama-cpp", "transformers", "rules"):
        assert b in str(e.value)


def test_missing_optional_dependency_gives_install_hint(cli, tmp_path, monkeypatch):
    # a backend module whose optional dependency is not installed
    (tmp_path / "needs_missing_dep.py").write_text("import surely_not_installed_pkg_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(backends.BACKENDS, "fancy", "needs_missing_dep:make_backend")
    monkeypatch.setitem(backends.INSTALL_HINTS, "fancy", "pip install fancy-judge")
    spec = load_spec(write_spec(tmp_path, backend="fancy"))
    with pytest.raises(MissingDependency, match="surely_not_installed_pkg_xyz.*pip install fancy-judge"):
        backends.create_backend(spec)
    (tmp_path / "t.jsonl").write_text('{"question": "q", "answer": "a", "prediction": "b"}\n')
    r = cli("judge", "--input", tmp_path / "t.jsonl", "--judge", write_spec(tmp_path, backend="fancy"),
            "--db", tmp_path / "d.db")
    assert r.code == 2 and "pip install fancy-judge" in r.err


def test_judges_readme_lists_every_backend_option():
    """judges/README.md names each backend's options; a new option must be documented there too."""
    import dataclasses
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "judges" / "README.md").read_text()
    for backend in ("llama-cpp", "transformers", "openai", "rules"):
        for f in dataclasses.fields(backends.backend_class(backend).Options):
            assert f"`{f.name}`" in readme, (backend, f.name)
