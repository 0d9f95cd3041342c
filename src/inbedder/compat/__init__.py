"""Drop-in classes with the exact signatures of the projects inbedder replaces.

Code written for them runs after changing only its import line, e.g.
``from inbedder.compat import INSTRUCTOR`` instead of ``from InstructorEmbedding import INSTRUCTOR``.
"""

from __future__ import annotations

from .causal import CausalLMEncoder
from .inbedder_lm import InBedder, MaskededLMEncoder, MaskedLMEncoder, Seq2SeqLMEncoder
from .instructor import INSTRUCTOR, InstructorModel

__all__ = ["INSTRUCTOR", "CausalLMEncoder", "InBedder", "InstructorModel", "MaskedLMEncoder", "MaskededLMEncoder",
           "Seq2SeqLMEncoder"]
