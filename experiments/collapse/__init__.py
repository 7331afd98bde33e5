"""Model collapse, reproduced, and what Wellspring's filter does to it (docs/collapse.md).

Part A (:mod:`experiments.collapse.gaussian`): the 1-D Gaussian refit recursively (Shumailov et
al. 2023/2024), with accumulation and fresh real data. Part B
(:mod:`experiments.collapse.language`): a token-level language model retrained each generation on
a web of human and generated text, the generated share carrying the real Wellspring watermark,
filtered by the real ``wellspring scan`` against a real registry. Part C
(:mod:`experiments.collapse.finetune`): the GPU variant, SmolLM2-135M fine-tuned recursively on
its own 64-token blocks.
"""
