import numpy as np
import pytest

from fedgmmtree import GMMTree, Tree
from fedgmmtree._tree import INTERNAL, LEAF


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(c, 0.5, (100, 2)) for c in ([0, 0], [8, 0], [0, 8])])
    return GMMTree(random_state=0).fit(X), X


def test_tree_named_arrays_round_trip_is_exact(fitted):
    model, _ = fitted
    arrays = model.tree_.to_arrays()
    back = Tree.from_arrays(arrays)
    for key, value in back.to_arrays().items():
        assert np.array_equal(value, arrays[key]), key
        assert value.dtype == arrays[key].dtype, key


def test_tree_arrays_have_one_key_per_field_and_a_version(fitted):
    arrays = fitted[0].tree_.to_arrays()
    assert arrays["tree.version"][0] == 1
    assert {"tree.parent", "tree.means", "tree.covariances", "tree.state"} <= set(
        arrays
    )


def test_tree_refuses_unknown_format_version(fitted):
    arrays = fitted[0].tree_.to_arrays()
    arrays["tree.version"] = np.array([99])
    with pytest.raises(ValueError, match="version 99 is not supported"):
        Tree.from_arrays(arrays)


def test_tree_route_ends_in_leaves_and_follows_best_child(fitted):
    model, X = fitted
    tree = model.tree_
    node = tree.route(X)
    assert np.all(tree.state[node] == LEAF)
    # every sample's leaf descends from the root's best child for that sample
    root_children = tree.children(0)
    assert tree.state[0] == INTERNAL and root_children.size == 2
    ancestor = node.copy()
    while True:
        up = tree.parent[ancestor]
        step = up > 0
        if not step.any():
            break
        ancestor[step] = up[step]
    assert set(np.unique(ancestor)) <= set(root_children)


def test_tree_path_weights_of_leaves_sum_to_one(fitted):
    tree = fitted[0].tree_
    assert tree.path_weights()[tree.leaves()].sum() == pytest.approx(1.0)


def test_tree_render_names_every_node_and_reason(fitted):
    text = fitted[0].render()
    assert text.count("node ") == fitted[0].tree_.n_nodes
    assert "split accepted" in text and "criterion prefers one Gaussian" in text
