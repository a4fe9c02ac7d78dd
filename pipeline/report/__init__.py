"""The run report: `<output>/report.html` (pipeline.report.build.write_report) and the
`leanline report` / `leanline runs` commands (pipeline.cli.report). Kept import-free so
that registering the commands does not load TensorFlow."""
