"""Training: data from labelled files, answer training for causal LMs, contrastive INSTRUCTOR training, a recipe.

Needs the ``train`` extra for LoRA (``pip install "inbedder[train]"``); everything else uses torch and transformers.

* :mod:`.data`       labelled files → QA records ``{input, instruction, answer}`` and MEDI records;
* :mod:`.loop`       the seeded, resumable optimisation loop both trainers share (checkpoints, progress bar);
* :mod:`.answer`     causal LMs fine-tuned to answer (loss on the answer tokens only);
* :mod:`.instructor` INSTRUCTOR-family encoders trained contrastively on MEDI records;
* :mod:`.recipe`     the default model: SmolLM2-135M-Instruct answer-trained on public QA and label data.
"""

from __future__ import annotations
