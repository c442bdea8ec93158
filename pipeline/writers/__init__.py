"""predict's output formats: each is one small writer module here, found by name.

``get_writer("srt").write(timeline, "out.srt")``; ``get_writer("table").render(predictions)``.
A writer renders either every input's prediction (table, json, csv) or one recording's timeline
(srt, vtt, png, html); see ``pipeline.writers.registry``. A new format is one new module that
registers itself with ``@writer(...)``, named in the import below.
"""

# Importing a writer module registers it; this order is the order predict's --help lists them.
from pipeline.writers import table, json, csv, srt, vtt, png, html, eaf  # noqa: F401, I001
from pipeline.writers.registry import (
    INPUTS,
    RECORDING,
    WRITERS,
    Writer,
    get_writer,
    write_recording_files,
)

__all__ = ["INPUTS", "RECORDING", "WRITERS", "Writer", "get_writer", "write_recording_files"]
