"""The adequacy check in words: does a frame classifier's accuracy say the data are learnable?"""

from __future__ import annotations


def adequacy_verdict(accuracy: float, bar: float) -> str:
    """One sentence: do the frames look learnable (validation accuracy against the bar)?"""
    if accuracy >= bar:
        return (f"Validation accuracy {accuracy:.3f} clears the adequacy bar of {bar:.2f}: "
                "the data look learnable, so poor segmentation points at the model or the labels, not the images.")
    return (
        f"Validation accuracy {accuracy:.3f} stays under the adequacy bar of {bar:.2f}: "
        "the classes are not yet separable from these frames; check the frames (beadseg-qc) before blaming the model."
    )
