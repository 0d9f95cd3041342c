"""Model families. Each module does only the math of one batch; the engine does everything else.

``FAMILIES`` maps a family name to ``"module:Class"``; the class has a ``from_pretrained(path, *, dtype,
trust_remote_code, **options)`` classmethod that rejects options it does not know.
"""

from __future__ import annotations

FAMILIES: dict[str, str] = {
    "instructor": "inbedder.encoders.instructor:InstructorEncoder",
    "masked": "inbedder.encoders.masked:MaskedEncoder",
    "seq2seq": "inbedder.encoders.seq2seq:Seq2SeqEncoder",
    "causal": "inbedder.encoders.causal:CausalEncoder",
    "decoder": "inbedder.encoders.decoder:DecoderEncoder",
}
