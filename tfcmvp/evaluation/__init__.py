"""kNN and linear-probe evaluation of frozen video features.

NumPy (and, for the linear probe, scikit-learn) only, so both methods are
testable on hand-made features:

    from tfcmvp.evaluation import knn, linear_probe
    results = knn.knn_accuracy(test_x, test_y, train_x, train_y, ks=(20, 200))
    probe = linear_probe.linear_probe(train_x, train_y, test_x, test_y, seed=0)

Modules: ``knn`` (the InstDisc weighted vote: cosine similarity, weights
exp(s / 0.07)), ``linear_probe`` (multinomial logistic regression with C
chosen on the train split only) and ``run`` (an export's cached retrieval
features through both, a table and a JSON: ``tfcmvp evaluate``). The
functions are not re-exported here: ``linear_probe`` would hide its module.
"""
