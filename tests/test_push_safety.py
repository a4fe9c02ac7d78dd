"""What an artifact, a killed upload or a bucket object can make the pusher and the pods
do (README, "Security"): names read from artifacts stay inside their directory, copies
take no symlinks, an interrupted remote publish leaves no visible version, and a remote
model module runs only with the content hash compiled into the pipeline.

No TFX pipeline runs here: each test builds the few files it needs, and remote storage
is TensorFlow's in-process `ram://` file system standing in for gs://.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest
import tensorflow as tf

from components.serving_pusher import executor as pusher
from kubeflow.runner import pin_remote_module
from models.custom import loader
from models.custom.loader import ModelModuleError, check_module
from models.errors import UserError
from models.file_names import plain_file_name
from models.text.tokenizer import TOKENIZER_FILE, Tokenizer
from pipeline.config import ConfigError, custom_config, load_config
from serving import versions

REPO = Path(__file__).resolve().parent.parent


def write_tokenized_tflite(directory: Path, vocabulary_file: str) -> Path:
    """A token-id TFLite's files as the Compressor ships them: the model (bytes the
    pusher never gets to load here), `tokenizer.json` and its vocabulary."""
    directory.mkdir(parents=True)
    (directory / "model.tflite").write_bytes(b"not loaded: the tokenizer is refused first")
    rule = {"max_tokens": 4, "oov_buckets": 1, "separators": [], "vocabulary_file": vocabulary_file}
    (directory / TOKENIZER_FILE).write_text(json.dumps(rule))
    (directory / "vocabulary.txt").write_text("[PAD]\nhello\n")
    return directory / "model.tflite"


@pytest.mark.parametrize(
    "name", ["../../x", "..", ".", "", "/etc/passwd", "a/b", "a\\b", "a\0b", None, 3]
)
def test_a_name_that_is_not_a_plain_file_name_is_refused(name):
    with pytest.raises(UserError, match="tokenizer.json: vocabulary_file is .* not a plain file"):
        plain_file_name(name, artifact="tokenizer.json", field="vocabulary_file")


@pytest.mark.parametrize("name", ["vocabulary.txt", "..py", ".hidden", "a b"])
def test_a_plain_file_name_is_kept(name):
    assert plain_file_name(name, artifact="tokenizer.json", field="vocabulary_file") == name


def test_a_tokenizer_naming_a_file_outside_the_artifact_is_refused_and_nothing_changes(tmp_path):
    staging = tmp_path / "pod" / "disk" / "staging"
    staging.mkdir(parents=True)
    # Where `staging / "../../x"` lands, and where `artifact / "../../x"` reads.
    outside = tmp_path / "pod" / "x"
    outside.write_text("the pod's own file")
    tflite = write_tokenized_tflite(tmp_path / "pod" / "artifact" / "tflite", "../../x")

    with pytest.raises(UserError) as refused:
        pusher.stage_tflite(str(tflite), staging)
    message = str(refused.value)
    assert str(tflite.parent / TOKENIZER_FILE) in message
    assert "vocabulary_file is '../../x'" in message
    assert outside.read_text() == "the pod's own file"
    assert sorted(p.name for p in staging.iterdir()) == ["model.tflite"]
    with pytest.raises(UserError, match="vocabulary_file is '../../x'"):
        Tokenizer.read(str(tflite.parent))  # a client reads no file outside either


def test_an_object_store_entry_that_is_not_a_plain_name_is_refused(tmp_path, monkeypatch):
    """gs:// can list an object `model/../x` as `..`-like names; none is copied."""
    source = tmp_path / "model"
    source.mkdir()
    monkeypatch.setattr(pusher.tf.io.gfile, "listdir", lambda _: ["../", "saved_model.pb"])
    with pytest.raises(UserError, match=r"an entry's name is '\.\.'"):
        pusher.copy_to_local(str(source), tmp_path / "staging")


def test_a_symlink_in_a_model_artifact_is_refused_and_not_copied(tmp_path):
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("a file the pusher can read")
    serving = tmp_path / "artifact" / "Format-Serving"
    (serving / "variables").mkdir(parents=True)
    (serving / "saved_model.pb").write_bytes(b"pb")
    (serving / "variables" / "variables.index").symlink_to(secret)
    staging = tmp_path / "staging"
    staging.mkdir()

    with pytest.raises(UserError, match=r"variables\.index is a symlink \(to .*secret\.txt\)"):
        pusher.copy_to_local(str(serving), staging)
    assert not any("secret" in p.read_text() for p in staging.rglob("*") if p.is_file())

    linked_directory = tmp_path / "artifact" / "linked"
    linked_directory.symlink_to(secret.parent, target_is_directory=True)
    with pytest.raises(UserError, match="linked is a symlink"):
        pusher.copy_to_local(str(linked_directory), staging)


def test_a_symlinked_tokenizer_file_is_refused(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("a file the pusher can read")
    tflite = write_tokenized_tflite(tmp_path / "artifact", "vocabulary.txt")
    (tflite.parent / "vocabulary.txt").unlink()
    (tflite.parent / "vocabulary.txt").symlink_to(secret)
    staging = tmp_path / "staging"
    staging.mkdir()

    with pytest.raises(UserError, match=r"vocabulary\.txt is a symlink"):
        pusher.stage_tflite(str(tflite), staging)
    assert not (staging / "vocabulary.txt").exists()


def populate_version(staging: Path) -> None:
    """A version's files, as a SavedModel lays them out: `saved_model.pb` goes last."""
    (staging / "variables").mkdir()
    (staging / "variables" / "variables.index").write_bytes(b"index")
    (staging / "variables" / "variables.data-00000-of-00001").write_bytes(b"data")
    (staging / versions.SAVED_MODEL_FILE).write_bytes(b"pb")


def kill_upload(monkeypatch: pytest.MonkeyPatch, *, after_files: int) -> None:
    """The next upload stops after `after_files` files as if its pusher were killed:
    nothing of it is deleted (a killed process runs no cleanup)."""
    copied = []
    real_copy = tf.io.gfile.copy

    def copy(source: str, destination: str, overwrite: bool = False) -> None:
        if len(copied) == after_files:
            raise KeyboardInterrupt("killed")
        copied.append(destination)
        real_copy(source, destination, overwrite)

    real_gfile = tf.io.gfile.GFile

    def gfile(name: str, mode: str = "r") -> object:
        if name.endswith(versions.PUBLISHED_MARKER):
            raise KeyboardInterrupt("killed before the marker")
        return real_gfile(name, mode)

    monkeypatch.setattr(tf.io.gfile, "copy", copy)
    monkeypatch.setattr(tf.io.gfile, "GFile", gfile)
    monkeypatch.setattr(tf.io.gfile, "rmtree", lambda _: None)


@pytest.mark.parametrize(
    "after_files", [1, 3], ids=["killed_mid_upload", "killed_after_saved_model_pb"]
)
def test_an_interrupted_remote_publish_leaves_no_visible_version_and_the_next_removes_it(
    tmp_path, monkeypatch, after_files
):
    base = f"ram://push-safety/{tmp_path.name}/serving/model"
    published = versions.publish_version({base: populate_version})
    assert tf.io.gfile.exists(f"{base}/{published}/{versions.PUBLISHED_MARKER}")

    with monkeypatch.context() as killed:
        kill_upload(killed, after_files=after_files)
        with pytest.raises(KeyboardInterrupt):
            versions.publish_version({base: populate_version})
    (orphan,) = [
        int(name.rstrip("/"))
        for name in tf.io.gfile.listdir(base)
        if name.rstrip("/").isdigit() and int(name.rstrip("/")) != published
    ]
    assert tf.io.gfile.listdir(f"{base}/{orphan}")  # the files the killed pusher uploaded
    assert versions.existing_versions(base) == [published]
    # Another pusher's upload may still be under way while the orphan is young.
    assert versions.remove_orphans(base, now_ms=orphan + 1) == []
    assert tf.io.gfile.isdir(f"{base}/{orphan}")

    monkeypatch.setattr(versions, "ORPHAN_AGE_MS", 0)
    # Orphans are versions numbered before the clock (by more than ORPHAN_AGE_MS): on
    # ram:// the killed push may have ended in the millisecond its number names.
    while time.time_ns() // 1_000_000 <= orphan:
        time.sleep(0.001)
    latest = versions.publish_version({base: populate_version})
    assert versions.existing_versions(base) == [published, latest]
    assert not tf.io.gfile.exists(f"{base}/{orphan}")


def test_a_new_version_never_lands_in_an_incomplete_upload_too_young_to_remove(
    tmp_path, monkeypatch
):
    base = f"ram://push-safety/{tmp_path.name}/serving/model"
    with monkeypatch.context() as clock_ahead:  # a pusher whose clock ran a day fast
        ahead_ns = time.time_ns() + 86_400 * 10**9
        clock_ahead.setattr(versions.time, "time_ns", lambda: ahead_ns)
        published = versions.publish_version({base: populate_version})
    # A killed pusher's upload after it, numbered past the clock: no orphan yet.
    young_orphan = published + 1
    tf.io.gfile.makedirs(f"{base}/{young_orphan}/variables")
    latest = versions.publish_version({base: populate_version})
    assert latest > young_orphan
    assert versions.existing_versions(base) == [published, latest]


def test_an_orphan_another_pusher_removed_first_is_no_error(tmp_path, monkeypatch):
    base = f"ram://push-safety/{tmp_path.name}/serving/model"
    published = versions.publish_version({base: populate_version})
    tf.io.gfile.makedirs(f"{base}/{published + 1}/variables")

    def removed_by_another_pusher(uri: str) -> None:
        raise tf.errors.NotFoundError(None, None, f"{uri} is gone")

    monkeypatch.setattr(tf.io.gfile, "rmtree", removed_by_another_pusher)
    now = published + 1 + versions.ORPHAN_AGE_MS + 1
    assert versions.remove_orphans(base, now_ms=now) == [published + 1]


def test_incomplete_versions_from_before_the_markers_are_kept(tmp_path):
    """A version published before leanline wrote markers is no orphan: it stays (and is
    listed once its marker is written, README "Security")."""
    base = f"ram://push-safety/{tmp_path.name}/serving/model"
    legacy = f"{base}/1000"
    tf.io.gfile.makedirs(legacy)
    with tf.io.gfile.GFile(f"{legacy}/{versions.SAVED_MODEL_FILE}", "wb") as handle:
        handle.write(b"pb")
    published = versions.publish_version({base: populate_version})

    assert versions.remove_orphans(base, now_ms=published * 2) == []
    assert versions.existing_versions(base) == [published]
    assert tf.io.gfile.exists(f"{legacy}/{versions.SAVED_MODEL_FILE}")


def test_a_staged_file_named_as_the_marker_is_refused(tmp_path):
    base = f"ram://push-safety/{tmp_path.name}/serving/model"

    def populate(staging: Path) -> None:
        populate_version(staging)
        (staging / versions.PUBLISHED_MARKER).write_text("early")

    with pytest.raises(UserError, match="completion marker"):
        versions.publish_version({base: populate})
    assert versions.existing_versions(base) == []
    assert not tf.io.gfile.exists(base) or not tf.io.gfile.listdir(base)


PENGUINS = REPO / "examples" / "custom_model"


def upload(uri: str, content: bytes) -> str:
    """Writes `content` to the object `uri` (replaced: ram:// does not truncate)."""
    tf.io.gfile.makedirs(uri.rsplit("/", 1)[0])
    if tf.io.gfile.exists(uri):
        tf.io.gfile.remove(uri)
    with tf.io.gfile.GFile(uri, "wb") as handle:
        handle.write(content)
    return uri


def test_a_bucket_module_is_pinned_at_compile_and_a_pod_refuses_other_content(tmp_path):
    content = (PENGUINS / "penguins_model.py").read_bytes()
    module = upload(f"ram://push-safety/{tmp_path.name}/penguins_model_v1.py", content)
    config = load_config(PENGUINS / "penguins.yaml").with_overrides(model={"module": module})

    pinned = pin_remote_module(config, "--module")
    digest = hashlib.sha256(content).hexdigest()
    assert pinned.model.module_sha256 == digest
    for sections in (("model",), ("model", "training"), ("model", "training", "compression")):
        assert custom_config(pinned, sections)["model"]["module_sha256"] == digest
    check_module(module, digest)  # a pod, with the content compiled in

    upload(module, content + b"\nprint('whoever can write the object')\n")
    loader._local_copy.cache_clear()  # the next pod reads the object again
    tampered = hashlib.sha256(content + b"\nprint('whoever can write the object')\n").hexdigest()
    with pytest.raises(ModelModuleError, match=f"sha256 {tampered}, not the {digest}"):
        check_module(module, digest)


def test_a_bucket_module_compile_cannot_read_is_refused_unless_its_hash_is_given(tmp_path):
    module = f"ram://push-safety/{tmp_path.name}/unreadable.py"
    config = load_config(PENGUINS / "penguins.yaml").with_overrides(model={"module": module})
    with pytest.raises(
        UserError, match=r"--module 'ram://.*unreadable\.py': cannot read it.*model\.module_sha256"
    ):
        pin_remote_module(config, "--module")

    given = config.with_overrides(model={"module_sha256": "0" * 64})
    assert pin_remote_module(given, "--module") is given


def test_a_module_hash_needs_a_module_file_and_64_hex_digits():
    config = load_config(PENGUINS / "penguins.yaml")
    with pytest.raises(ConfigError, match="module_sha256"):
        config.with_overrides(model={"module_sha256": "abc"})
    with pytest.raises(ConfigError, match="module_sha256 is the hash of a module file"):
        config.with_overrides(model={"module": "team_models.churn", "module_sha256": "0" * 64})
