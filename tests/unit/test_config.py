"""params.yaml -> RunConfig: resolution per profile, and errors that name the bad key."""
import copy

import pytest
import yaml

from repro import config
from tests.conftest import REPO

PARAMS = REPO / "params.yaml"


@pytest.fixture
def params():
    return config.read_params(PARAMS)


@pytest.mark.parametrize("name,input_size,heatmap_size,sigma,batch", [
    ("256x192", (192, 256), (24, 32), 2.0, 64), ("384x288", (288, 384), (36, 48), 3.0, 32)])
def test_full_profile_is_the_published_recipe(name, input_size, heatmap_size, sigma, batch):
    cfg = config.load(PARAMS, name, profile="full")
    assert cfg.model == config.CPMConfig()
    assert (cfg.codec.input_size, cfg.codec.heatmap_size, cfg.codec.sigma) == (input_size, heatmap_size, sigma)
    assert (cfg.train.batch_per_gpu, cfg.train.gpus, cfg.train.epochs) == (batch, 8, 210)
    assert (cfg.train.lr, cfg.train.warmup_iters, cfg.train.milestones) == (5e-4, 500, (170, 200))
    assert cfg.data.source == "coco" and cfg.data.root == "data/full"


def test_params_recipe_matches_published_yaml():
    # The "closed" check compares against published.yaml; params.yaml's recipe must start out equal.
    recipe, published = config.read_params(PARAMS)["recipe"], config.published()["recipe"]
    assert recipe["model"] == published["model"]
    for key, value in published["train"].items():
        assert recipe["train"][key] == value, key


def test_smoke_profile_is_a_narrow_member_of_the_family():
    cfg = config.load(PARAMS, "256x192", profile="smoke")
    assert cfg.data.source == "synthetic" and cfg.data.root == "data/smoke"
    assert cfg.model.feat_channels < config.CPMConfig().feat_channels
    assert cfg.codec.sigma == 2.0  # the per-config values are not overridden by the profile


def test_a_profile_can_override_one_config_only(params):
    """profiles.<p>.configs.<name> is merged over the profile's sections for that input size alone."""
    params["profiles"]["smoke"]["configs"] = {"384x288": {"train": {"epochs": 7, "milestones": [5]}}}
    one, other = config.resolve(params, "384x288", "smoke"), config.resolve(params, "256x192", "smoke")
    assert (one.train.epochs, one.train.milestones) == (7, (5,))
    smoke_train = params["profiles"]["smoke"]["train"]
    assert (other.train.epochs, list(other.train.milestones)) == (smoke_train["epochs"], smoke_train["milestones"])
    assert one.train.batch_per_gpu == other.train.batch_per_gpu == smoke_train["batch_per_gpu"]   # the rest kept


def test_resolved_config_round_trips_through_yaml():
    cfg = config.load(PARAMS, "384x288")
    assert yaml.safe_load(yaml.safe_dump(cfg.to_dict()))["codec"]["input_size"] == [288, 384]


@pytest.mark.parametrize("mutate,message", [
    (lambda p: p["recipe"]["train"].update(lr="fast"), "train.lr: expected float"),
    (lambda p: p["recipe"]["train"].update(learning_rate=1e-3), "train.learning_rate"),
    (lambda p: p["recipe"]["train"].pop("weight_decay"), "train.weight_decay: missing"),
    (lambda p: p["profiles"]["smoke"]["model"].update(feat_channels=8.5), "model.feat_channels: expected int"),
    (lambda p: p["configs"]["256x192"].update(heatmap_size=[24, 30]), "must be input_size / 8"),
    (lambda p: p["configs"]["256x192"].update(input_size=[192]), "configs.256x192.input_size: expected 2 items"),
    (lambda p: p.update(profile="medium"), "profile: 'medium'"),
    (lambda p: p["profiles"]["smoke"]["train"].update(amp="int8"), "train.amp: 'int8'"),
    (lambda p: p["profiles"]["smoke"]["train"].update(milestones=[9, 8]), "train.milestones"),
    (lambda p: p.pop("recipe"), "recipe: missing"),
    (lambda p: p["profiles"]["smoke"].update(configs={"512x384": {"train": {"epochs": 1}}}),
     "profiles.smoke.configs: keys must be configs of params.yaml"),
    (lambda p: p["profiles"]["smoke"].update(configs={"256x192": {"data": {"source": "coco"}}}),
     "profiles.smoke.configs.256x192: unknown key(s) ['data']"),
    (lambda p: p["recipe"]["train"].update(stop_below_published={"margin": 0.05}),
     "train.stop_below_published.from_epoch: missing"),
    (lambda p: p["recipe"]["train"].update(stop_below_published={"margin": -0.1, "from_epoch": 30}),
     "train.stop_below_published: StopBelowPublished(margin=-0.1, from_epoch=30) needs margin >= 0"),
    (lambda p: p["recipe"]["train"].update(stop_below_published={"margin": 0.05, "from_epoch": 0}),
     "needs margin >= 0 (AP) and from_epoch >= 1"),
    (lambda p: p["recipe"]["train"].update(stop_below_published=0.05),
     "train.stop_below_published: expected a mapping, got 0.05"),
    (lambda p: (p["recipe"]["train"].update(stop_below_published={"margin": 0.05, "from_epoch": 2}),
                p["profiles"]["smoke"]["train"].update(val_interval=None)),
     "train.stop_below_published needs validations: train.val_interval is null"),
])
def test_bad_params_name_the_key_and_the_file(tmp_path, params, mutate, message):
    bad = copy.deepcopy(params)
    mutate(bad)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(config.ConfigError) as err:
        config.load(path, "256x192")
    assert message in str(err.value) and str(path) in str(err.value)


def test_unknown_config_name_is_an_error():
    with pytest.raises(config.ConfigError, match="no config '512x384'"):
        config.load(PARAMS, "512x384")


def test_stop_below_published_is_off_by_default_and_parsed_when_set(params):
    assert config.resolve(params, "256x192", "full").train.stop_below_published is None
    on = copy.deepcopy(params)
    on["recipe"]["train"]["stop_below_published"] = {"margin": 0.05, "from_epoch": 30}
    cfg = config.resolve(on, "256x192", "full")
    assert cfg.train.stop_below_published == config.StopBelowPublished(margin=0.05, from_epoch=30)
    assert cfg.to_dict()["train"]["stop_below_published"] == {"margin": 0.05, "from_epoch": 30}


def test_params_and_the_published_table_name_the_same_input_sizes(tmp_path):
    """A size in params.yaml only would be trained and left out of every report; one in published.yaml only
    reported as not run forever. Both files are read, and a disagreement names both."""
    assert set(config.input_sizes(REPO / "params.yaml")) == set(config.published()["models"])
    params = config.read_params(REPO / "params.yaml")
    params["configs"]["512x384"] = dict(params["configs"]["384x288"])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(config.ConfigError, match=r"params.yaml configs .*512x384.* differ from .*published.yaml"):
        config.input_sizes(tmp_path / "params.yaml")
