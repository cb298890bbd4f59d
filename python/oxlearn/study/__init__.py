"""``oxlearn study``: the digits study with oxlearn and scikit-learn side by side.

The runner behind the ``oxlearn study`` command, importable to run the same comparison on
your own data::

    from oxlearn.study import run_study, write_outputs

    result = run_study(X, y, sections=["knn", "mlp1"], seeds=3)
    print(result.to_frame())
    write_outputs(result, "my-study")  # PNGs, results.json, report.md
"""

from oxlearn.study._data import StudyData, StudyInputError, load_data
from oxlearn.study._report import format_section, format_totals, write_outputs
from oxlearn.study._results import (
    BackendResult,
    ConfigResult,
    SectionResult,
    StudyResult,
    StudySettings,
)
from oxlearn.study._runner import (
    SECTION_NAMES,
    SECTIONS,
    SectionSpec,
    StudyInterrupted,
    run_study,
    run_study_on,
)

__all__ = [
    "SECTIONS",
    "SECTION_NAMES",
    "BackendResult",
    "ConfigResult",
    "SectionResult",
    "SectionSpec",
    "StudyData",
    "StudyInputError",
    "StudyInterrupted",
    "StudyResult",
    "StudySettings",
    "format_section",
    "format_totals",
    "load_data",
    "run_study",
    "run_study_on",
    "write_outputs",
]
