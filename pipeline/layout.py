"""Every name in a run's output directory, in one place. `run`, `report`, `runs`, the
serving commands and the benchmarks all find a run's files by these names, so a name
changed here changes for all of them (and only here):

    <output_dir>/
      leanline.yaml       the run's configuration, paths resolved (RUN_CONFIG_FILE)
      metadata.sqlite     MLMD store: component cache, lineage, `leanline runs`
      pipeline/           TFX pipeline root (artifacts)
      data/               copies of the input that ExampleGen reads, when it needs any
      serving/<name>/     TF Serving's model base path: one numbered version per push
      tflite/<name>/      the same versions as TFLite files
      logs/               one log file per run
      run_summary.json    what the last run did
      report.html         the run report, PNGs beside it in report/
      .leanline.lock      held while a run writes here

The pipeline's node ids name the folders under pipeline/<name>/ (and the nodes in MLMD),
so they are here too: the report, the summary and `runs` find each node's artifacts by
them. Imports nothing, so every module of the pipeline floor can use it.
"""

RUN_CONFIG_FILE = "leanline.yaml"
METADATA_FILE = "metadata.sqlite"
PIPELINE_ROOT = "pipeline"
DATA_DIR = "data"
# Under DATA_DIR: CSV copies whose header row pipeline.inputs rewrote for ExampleGen.
PLAIN_HEADER_DIR = "plain-header-csv"
SERVING_DIR = "serving"
TFLITE_DIR = "tflite"
LOG_DIR = "logs"
SUMMARY_FILE = "run_summary.json"
REPORT_FILE = "report.html"
REPORT_ASSETS_DIR = "report"
LOCK_FILE = ".leanline.lock"

# Node ids. The standard components keep TFX's default ids, their class names.
STATISTICS_GEN = "StatisticsGen"
SCHEMA_GEN = "SchemaGen"
IMPORT_SCHEMA_GEN = "ImportSchemaGen"
SCHEMA_PRODUCERS = (SCHEMA_GEN, IMPORT_SCHEMA_GEN)
EXAMPLE_VALIDATOR = "ExampleValidator"
DATA_GATE = "DataGate"
TRAINER = "Trainer"
COMPRESSOR = "Compressor"
SERVING_PUSHER = "ServingPusher"
EVALUATE_COMPRESSION = "EvaluateCompression"
EVALUATE_VS_BLESSED = "EvaluateVsBlessed"
# EvaluateVsBlessed of runs whose gates judge the end-to-end TFLite. Its own id keeps the
# resolver to models blessed by it, which have the file TFMA reads: after a switch of
# format (or from a run of an older leanline) the first run has no baseline, as a first
# run, instead of failing on a model it cannot read.
EVALUATE_TFLITE_VS_BLESSED = "EvaluateTFLiteVsBlessed"
SLICE_GATE = "SliceGate"
LATEST_BLESSED_RESOLVER = "LatestBlessedModelResolver"
