//! The random forest of ml/random-forest, natively (for bench/ml.py: the
//! WebAssembly tax). Usage: forest TRAIN.csv TEST.csv N_TREES SEED; prints
//! JSON: fit seconds and held-out accuracy.

use ml_common::{Forest, Table};
use smartcore::ensemble::random_forest_classifier::RandomForestClassifierParameters;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, train, test, trees, seed] = &args[..] else {
        eprintln!("usage: forest TRAIN.csv TEST.csv N_TREES SEED");
        std::process::exit(2);
    };
    let read = |path: &str| {
        let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        Table::from_reader(file).unwrap_or_else(|e| panic!("{path}: {}", e.message()))
    };
    let (train, test) = (read(train), read(test));
    let data = train.features_and_labels("target").expect("a target column");
    let held = test.features_and_labels("target").expect("a target column");
    let d = data.features.len();
    let settings = RandomForestClassifierParameters::default()
        .with_n_trees(trees.parse().expect("N_TREES"))
        .with_m(((d as f64).sqrt().floor() as usize).max(1))
        .with_seed(seed.parse().expect("SEED"));
    let start = std::time::Instant::now();
    let forest = Forest::fit(&data.matrix().expect("rows"), &data.y, settings).expect("fit");
    let fit = start.elapsed().as_secs_f64();
    let predicted = forest.predict(&held.matrix().expect("rows")).expect("predict");
    let accuracy = predicted.iter().zip(&held.y).filter(|(p, y)| p == y).count() as f64 / held.y.len() as f64;
    println!("{{\"fit_s\": {fit}, \"accuracy\": {accuracy}}}");
}
