"""The gpt testbed's text (nfl.testbeds.corpus): disjoint spans, windows inside them, a stable identity."""

from __future__ import annotations

import dataclasses
import sysconfig
from pathlib import Path

import pytest
import torch

from nfl import seeds
from nfl.config import GPTSettings, preset
from nfl.testbeds import corpus, gpt


@pytest.fixture(scope="module")
def english() -> corpus.Corpus:
    return corpus.load("english")


def test_the_spans_are_disjoint_contiguous_and_cover_the_corpus_in_order(english: corpus.Corpus) -> None:
    spans = english.spans()
    assert list(spans) == ["train", "val", "test"]
    base = english.data.data_ptr()
    offsets = [(span.data_ptr() - base, span.data_ptr() - base + len(span)) for span in spans.values()]
    assert offsets[0][0] == 0 and offsets[-1][1] == len(english.data)
    assert all(end == start for (_, end), (start, _) in zip(offsets, offsets[1:]))
    assert all(len(span) > 1000 for span in spans.values())


def test_no_window_crosses_its_spans_end() -> None:
    text = corpus.Corpus.from_bytes("test", bytes(range(100)))
    span = text.spans()["val"]  # bytes 80 ... 89
    x, y = corpus.fixed_windows(span, 3, context=9)
    assert x.min() >= 80 and y.max() <= 89
    assert torch.equal(y[:, :-1], x[:, 1:])  # targets are the next bytes
    with pytest.raises(ValueError, match="holds no window"):
        corpus.fixed_windows(span, 3, context=10)
    for seed in range(20):
        x, y = corpus.random_windows(span, 8, 5, torch.Generator().manual_seed(seed))
        assert x.min() >= 80 and y.max() <= 89


def test_random_windows_follow_the_callers_generator(english: corpus.Corpus) -> None:
    train = english.spans()["train"]
    first = corpus.random_windows(train, 4, 16, seeds.generator(43, "batches", "lora"))
    again = corpus.random_windows(train, 4, 16, seeds.generator(43, "batches", "lora"))
    other = corpus.random_windows(train, 4, 16, seeds.generator(43, "batches", "pissa"))
    assert torch.equal(first[0], again[0]) and not torch.equal(first[0], other[0])


def test_fixed_windows_are_spread_over_the_whole_span(english: corpus.Corpus) -> None:
    test = english.spans()["test"]
    x, _ = corpus.fixed_windows(test, 5, 64)
    assert torch.equal(x[0], test[:64].long()) and torch.equal(x[-1], test[-65:-1].long())


def test_the_identity_is_stable_and_tells_corpora_apart(english: corpus.Corpus, tmp_path) -> None:
    code = corpus.load("code")
    first = corpus.identity(english, code)
    assert first == corpus.identity(corpus.load("english"), corpus.load("code"))
    assert first["base"]["sha256"] != first["shifted"]["sha256"] and first["python"]
    mine = tmp_path / "mine.txt"
    mine.write_bytes(b"hello world " * 100)
    theirs = corpus.identity(english, corpus.load("code", mine))
    assert theirs["shifted"]["source"] == str(mine) and theirs["shifted"]["bytes"] == 1200
    assert theirs["shifted"]["sha256"] != first["shifted"]["sha256"] and theirs["base"] == first["base"]


def test_code_comes_from_the_running_pythons_standard_library(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="lacks argparse.py"):
        corpus.code_bytes(str(tmp_path))
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    code = corpus.code_bytes()
    assert code.startswith((stdlib / "argparse.py").read_bytes())
    assert code.endswith((stdlib / "tokenize.py").read_bytes())


def test_the_unigram_reference_is_the_byte_entropy() -> None:
    assert gpt.unigram_bits(torch.arange(256, dtype=torch.uint8).repeat(3)) == pytest.approx(8.0)
    assert gpt.unigram_bits(torch.tensor([7, 7, 9, 9], dtype=torch.uint8)) == pytest.approx(1.0)


def test_a_corpus_too_small_for_a_window_is_refused_naming_it(tmp_path) -> None:
    small = tmp_path / "small.txt"
    small.write_bytes(b"x" * 300)  # its 30-byte validation span holds no window of 65
    cfg = dataclasses.replace(preset("default", "gpt"), gpt=GPTSettings(corpus_shift=str(small)))
    with pytest.raises(ValueError, match="--corpus-shift: .*small.txt: its val span of 30 bytes holds no window of 65"):
        gpt.resolve(cfg)
    missing = dataclasses.replace(cfg, gpt=GPTSettings(corpus_base=str(tmp_path / "none.txt")))
    with pytest.raises(ValueError, match="--corpus-base: No such file or directory: .*none.txt"):
        gpt.resolve(missing)


def test_the_default_data_are_well_formed() -> None:
    data = gpt.make_data(preset("default", "gpt"), seed=43)
    assert data.base.x_val.shape == data.shifted.y_test.shape == (64, 64)
    assert 4.0 < data.shifted.unigram_bits < data.base.unigram_bits < 5.0  # English bytes here: 4.7 bits
    assert data.identity["base"]["source"] == "pydoc_data.topics"
