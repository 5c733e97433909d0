# Diagnostics (issue 12): why a model scores as it does. Everything under results/diagnostics/,
# gathered in results/diagnostics/report.html. Each rule sees only the settings it uses, so a
# changed setting reruns only the figures that depend on it.


rule diagnostics_neighbours:
    input:
        shard="results/embeddings/{model}/part-00000.parquet",
        vectors=f"results/tags/{WEIGHTINGS[0]}/vectors.npz",
        images="results/catalogue/images.parquet",
    output:
        table="results/diagnostics/models/{model}/neighbours.parquet",
        sheet="results/diagnostics/models/{model}/neighbours.png",
    log:
        "logs/diagnostics/{model}/neighbours.log",
    benchmark:
        "logs/diagnostics/{model}/neighbours.benchmark.tsv"
    conda:
        "../../envs/corrembed.yaml"
    params:
        settings=diagnostics_settings("category", "queries", "neighbours", "seed"),
        item_embedding=config["scoring"]["item_embedding"],
    script:
        "../scripts/diagnostics_neighbours.py"


rule diagnostics_map:
    input:
        shard="results/embeddings/{model}/part-00000.parquet",
        vectors=f"results/tags/{WEIGHTINGS[0]}/vectors.npz",
    output:
        "results/diagnostics/models/{model}/map.parquet",
    log:
        "logs/diagnostics/{model}/map.log",
    benchmark:
        "logs/diagnostics/{model}/map.benchmark.tsv"
    conda:
        "../../envs/corrembed.yaml"
    threads: 4
    params:
        map=canonical(config["diagnostics"]["map"]),
        seed=config["diagnostics"]["seed"],
        item_embedding=config["scoring"]["item_embedding"],
    script:
        "../scripts/diagnostics_map.py"


rule diagnostics_map_figures:
    input:
        map="results/diagnostics/models/{model}/map.parquet",
        vectors=f"results/tags/{WEIGHTINGS[0]}/vectors.npz",
        images="results/catalogue/images.parquet",
    output:
        scatter="results/diagnostics/models/{model}/map.png",
        collage="results/diagnostics/models/{model}/collage.png",
    log:
        "logs/diagnostics/{model}/map_figures.log",
    benchmark:
        "logs/diagnostics/{model}/map_figures.benchmark.tsv"
    conda:
        "../../envs/corrembed.yaml"
    params:
        settings=diagnostics_settings("category", "collage_grid"),
    script:
        "../scripts/diagnostics_map_figures.py"


rule diagnostics_scores:
    input:
        shard="results/embeddings/{model}/part-00000.parquet",
        vectors="results/tags/{weighting}/vectors.npz",
        per_anchor="results/scores/{model}/{weighting}.per_anchor.parquet",
    output:
        attributes="results/diagnostics/models/{model}/{weighting}.attributes.csv",
        retrieval="results/diagnostics/models/{model}/{weighting}.retrieval.csv",
    log:
        "logs/diagnostics/{model}/{weighting}.scores.log",
    benchmark:
        "logs/diagnostics/{model}/{weighting}.scores.benchmark.tsv"
    conda:
        "../../envs/corrembed.yaml"
    params:
        settings=diagnostics_settings("retrieval_k", "retrieval_categories", "seed"),
        scoring=canonical(config["scoring"]),
    script:
        "../scripts/diagnostics_scores.py"


# A layer sweep's entries are checked first and locally (shape-only network), like check_model.
rule check_layers:
    output:
        "results/weights/{model}.layers.checked.json",
    log:
        "logs/weights/{model}.layers.check.log",
    priority: 100
    localrule: True
    conda:
        "../../envs/corrembed.yaml"
    params:
        spec=embedding_spec,
        layers=sweep_layers,
    script:
        "../scripts/check_layers.py"


# A model's layer sweep (its `layers:` list): every layer in one forward pass per batch, each
# cached under the identity a plain run at that layer has; scored on the headline anchors.
rule diagnostics_layers:
    input:
        images="results/catalogue/images.parquet",
        weights="results/weights/{model}.json",
        checked="results/weights/{model}.checked.json",
        layers_checked="results/weights/{model}.layers.checked.json",
        vectors=expand("results/tags/{weighting}/vectors.npz", weighting=WEIGHTINGS),
        per_anchor=expand(
            "results/scores/{{model}}/{weighting}.per_anchor.parquet",
            weighting=WEIGHTINGS,
        ),
    output:
        table="results/diagnostics/models/{model}/layers.csv",
        plot="results/diagnostics/models/{model}/layers.png",
    log:
        "logs/diagnostics/{model}/layers.log",
    benchmark:
        "logs/diagnostics/{model}/layers.benchmark.tsv"
    conda:
        "../../envs/corrembed.yaml"
    threads: config["embed"]["threads"]
    resources:
        **EMBED_RESOURCES,
    params:
        spec=embedding_spec,
        layers=sweep_layers,
        torch_home=config["torch_home"],
        precision=embedding_setting("precision"),
        decoder=embedding_setting("decoder"),
        weightings=WEIGHTINGS,
        scoring=canonical(config["scoring"]),
    script:
        "../scripts/diagnostics_layers.py"


rule diagnostics_comparison:
    input:
        per_anchor=expand(
            "results/scores/{model}/{{weighting}}.per_anchor.parquet", model=MODELS
        ),
    output:
        ranking="results/diagnostics/comparison/{weighting}/ranking.csv",
        pairs="results/diagnostics/comparison/{weighting}/pairs.csv",
        plot="results/diagnostics/comparison/{weighting}/ranking.png",
    log:
        "logs/diagnostics/comparison/{weighting}.log",
    benchmark:
        "logs/diagnostics/comparison/{weighting}.benchmark.tsv"
    localrule: True
    conda:
        "../../envs/corrembed.yaml"
    params:
        models=MODELS,
        comparison=canonical(config["diagnostics"]["comparison"]),
        scoring=canonical(config["scoring"]),
    script:
        "../scripts/diagnostics_comparison.py"


rule diagnostics_model_figures:
    input:
        ranking="results/diagnostics/comparison/{weighting}/ranking.csv",
        attributes=expand(
            "results/diagnostics/models/{model}/{{weighting}}.attributes.csv",
            model=MODELS,
        ),
        retrieval=expand(
            "results/diagnostics/models/{model}/{{weighting}}.retrieval.csv",
            model=MODELS,
        ),
    output:
        heatmap="results/diagnostics/comparison/{weighting}/attributes.png",
        scatter="results/diagnostics/comparison/{weighting}/corrembed_vs_ndcg.png",
    log:
        "logs/diagnostics/comparison/{weighting}.figures.log",
    benchmark:
        "logs/diagnostics/comparison/{weighting}.figures.benchmark.tsv"
    localrule: True
    conda:
        "../../envs/corrembed.yaml"
    params:
        models=MODELS,
    script:
        "../scripts/diagnostics_model_figures.py"


rule diagnostics_best_vs_worst:
    input:
        ranking="results/diagnostics/comparison/{weighting}/ranking.csv",
        neighbours=expand(
            "results/diagnostics/models/{model}/neighbours.parquet", model=MODELS
        ),
        vectors=f"results/tags/{WEIGHTINGS[0]}/vectors.npz",
        images="results/catalogue/images.parquet",
    output:
        "results/diagnostics/comparison/{weighting}/best_vs_worst.png",
    log:
        "logs/diagnostics/comparison/{weighting}.best_vs_worst.log",
    benchmark:
        "logs/diagnostics/comparison/{weighting}.best_vs_worst.benchmark.tsv"
    conda:
        "../../envs/corrembed.yaml"
    params:
        models=MODELS,
    script:
        "../scripts/diagnostics_best_vs_worst.py"


rule diagnostics_report:
    input:
        unpack(diagnostics_report_inputs),
    output:
        "results/diagnostics/report.html",
    log:
        "logs/diagnostics/report.log",
    benchmark:
        "logs/diagnostics/report.benchmark.tsv"
    localrule: True
    conda:
        "../../envs/corrembed.yaml"
    params:
        models=MODELS,
        weightings=WEIGHTINGS,
        settings=diagnostics_settings(),
    script:
        "../scripts/diagnostics_report.py"


# Tag audit (issue 24): every item's neighbours in the consensus models (the headline ranking's
# best and those tied with it) against its tags; the most suspect first.
rule diagnostics_audit:
    input:
        shards=expand("results/embeddings/{model}/part-00000.parquet", model=MODELS),
        vectors=f"results/tags/{WEIGHTINGS[0]}/vectors.npz",
        images="results/catalogue/images.parquet",
        rankings=expand(
            "results/diagnostics/comparison/{weighting}/ranking.csv",
            weighting=WEIGHTINGS,
        ),
        categories=expand(
            "results/tags/{weighting}/categories.csv", weighting=WEIGHTINGS
        ),
    output:
        table="results/diagnostics/tag_audit.csv",
        confusions="results/diagnostics/audit/confusions.csv",
        sheet="results/diagnostics/audit/suspects.png",
    log:
        "logs/diagnostics/audit.log",
    benchmark:
        "logs/diagnostics/audit.benchmark.tsv"
    conda:
        "../../envs/corrembed.yaml"
    params:
        models=MODELS,
        weightings=WEIGHTINGS,
        settings=diagnostics_settings("audit")["audit"],
        item_embedding=config["scoring"]["item_embedding"],
    script:
        "../scripts/diagnostics_audit.py"


rule diagnostics_agreement:
    input:
        shards=expand("results/embeddings/{model}/part-00000.parquet", model=MODELS),
        vectors=f"results/tags/{WEIGHTINGS[0]}/vectors.npz",
    output:
        table="results/diagnostics/model_agreement.csv",
        heatmap="results/diagnostics/audit/model_agreement.png",
    log:
        "logs/diagnostics/agreement.log",
    benchmark:
        "logs/diagnostics/agreement.benchmark.tsv"
    conda:
        "../../envs/corrembed.yaml"
    params:
        models=MODELS,
        settings=diagnostics_settings("agreement")["agreement"],
        seed=config["diagnostics"]["seed"],
        item_embedding=config["scoring"]["item_embedding"],
    script:
        "../scripts/diagnostics_agreement.py"
