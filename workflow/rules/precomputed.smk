# Precomputed embeddings (models with source: precomputed): the user's file is read and checked
# against the catalogue instead of the weights and embed steps. Same outputs as merge_embeddings,
# so score, diagnostics and summary treat the model like any other.
rule precomputed_embeddings:
    input:
        images="results/catalogue/images.parquet",
        embeddings=precomputed_files,
    output:
        shard="results/embeddings/{model}/part-00000.parquet",
        meta="results/embeddings/{model}/meta.json",
    log:
        "logs/embed/{model}.precomputed.log",
    wildcard_constraints:
        # (?!) matches nothing: without precomputed models the rule never applies.
        model="|".join(re.escape(m) for m in PRECOMPUTED_MODELS) or "(?!)",
    localrule: True
    conda:
        "../../envs/corrembed.yaml"
    params:
        spec=embedding_spec,
    script:
        "../scripts/precomputed_embeddings.py"


ruleorder: precomputed_embeddings > merge_embeddings
