"""The application: the `seq2seq` command line and what it stands on.

    cli.py        the commands train, predict, evaluate, score, attention
    opts.py       every option of the command line, in groups, and the
                  validation of each command's arguments
    model_dir.py  a model directory: config.json, vocabularies, model.h5
    translator.py text in, text out: a model directory (or several, an
                  ensemble) with its vocabularies and search
    rescoring.py  reranking n-best lists with other models' scores
    nbest.py      another system's n-best lists (e.g. Phonetisaurus') as scores
    serve.py      `seq2seq serve`: OpenNMT-py's REST protocol over gunicorn,
                  requests batched across clients
"""
