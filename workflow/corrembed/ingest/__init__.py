"""The ingest stage: a catalogue manifest -> ``images.parquet``, ``tags.parquet``, ``rejects.csv``.

- :mod:`.pipeline` :func:`ingest_catalogue`, the stage's front: a sequence of named steps;
- :mod:`.options` :class:`IngestOptions` (config ``catalogue:``, validated once);
- :mod:`.manifest` reading and parsing the manifest (wide or long, image paths or a template);
- :mod:`.image_checks` checking that every image decodes (a thread pool);
- :mod:`.value_findings` value variants and telling categories (the report's findings);
- :mod:`.catalogue` the output tables' schemas and their readers (:func:`read_catalogue`);
- :mod:`.demo` the generated demo catalogue (synthetic products, tags and interactions;
  its pictures: :mod:`.demo_pictures`);
- :mod:`.jobs` what the ingest rule runs (:func:`~corrembed.ingest.jobs.ingest_job`).

Examples
--------
>>> from corrembed.ingest import IngestOptions
>>> IngestOptions(format="long").format
'long'
"""

from .catalogue import Interactions, read_catalogue, read_interactions
from .demo import make_demo_catalogue
from .image_checks import ImageCheck, check_image, check_images
from .options import IngestOptions
from .pipeline import ingest_catalogue

__all__ = [
    "ImageCheck",
    "IngestOptions",
    "Interactions",
    "check_image",
    "check_images",
    "ingest_catalogue",
    "make_demo_catalogue",
    "read_catalogue",
    "read_interactions",
]
