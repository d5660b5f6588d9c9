//! The catalogs' type-ahead (issue 12, item 1) at 10,000 items and 5,000 buyers: what one
//! keystroke's search costs (`CatalogIndex::items` / `buyers`: name, pinyin initials, code,
//! ranked, 8 shown), next to a baseline run in the same process: a plain case-sensitive
//! substring scan of the names (`str::contains`), the least any filter does. Also the
//! index's rebuild after a change (the catalogs read and the initials computed).
//!
//! Run: `cargo bench -p kaipiao-desk --bench catalog` (`make bench-batch` runs it too).

use kaipiao_desk::catalog::{CatalogIndex, MATCHES};
use kaipiao_ledger::{CatalogBuyer, CatalogItem};
use kaipiao_testkit::ledger::enrolled;
use std::time::Instant;

const WORDS: [&str; 16] = [
    "键盘",
    "鼠标",
    "显示器",
    "咨询费",
    "白菜",
    "收纳盒",
    "打印纸",
    "墨盒",
    "电缆",
    "插座",
    "水杯",
    "台灯",
    "文件夹",
    "订书机",
    "硒鼓",
    "路由器",
];
const SHORT: [&str; 4] = ["计算机配套产品", "现代服务", "日用杂品", "纸制品"];
const CITIES: [&str; 8] = [
    "深圳市",
    "杭州市",
    "北京市",
    "上海市",
    "广州市",
    "成都市",
    "武汉市",
    "南京市",
];

fn median_and_p99(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[v.len() / 2], v[(v.len() * 99) / 100])
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let (n_items, n_buyers) = if quick { (500, 250) } else { (10_000, 5_000) };
    let s = enrolled();
    let now = chrono::Utc::now();
    let items: Vec<CatalogItem> = (0..n_items)
        .map(|i| CatalogItem {
            name: format!("*{}*{}{}", SHORT[i % 4], WORDS[i % 16], i),
            tax_code: format!("10{:017}", i * 7919 % 100_000_000_000_000_000),
            unit: "个".into(),
            price: format!("{}.5", i % 500 + 1),
            tax_rate: "0.13".into(),
            ..CatalogItem::default()
        })
        .collect();
    let buyers: Vec<CatalogBuyer> = (0..n_buyers)
        .map(|i| CatalogBuyer {
            name: format!("{}某某{}科技有限公司{i}", CITIES[i % 8], WORDS[i % 16]),
            kind: "ordinary".into(),
            ..CatalogBuyer::default()
        })
        .collect();
    s.ledger.save_items(&items, now).expect("items");
    s.ledger.save_buyers(&buyers, now).expect("buyers");

    let t = Instant::now();
    let mut index = CatalogIndex::default();
    index.refresh(&s.ledger).expect("index");
    let rebuild = t.elapsed();
    let names: Vec<String> = s
        .ledger
        .items()
        .expect("items")
        .into_iter()
        .map(|i| i.name)
        .collect();
    let buyer_names: Vec<String> = s
        .ledger
        .buyers()
        .expect("buyers")
        .into_iter()
        .map(|b| b.name)
        .collect();

    // Keystrokes as a clerk types them: a word character by character, initials, a code.
    let queries = [
        "键",
        "键盘",
        "j",
        "jp",
        "jsj",
        "显示",
        "10",
        "1000",
        "白",
        "z",
        "sz",
        "深圳",
        "深圳市某",
        "xyz",
    ];
    let rounds = if quick { 3 } else { 200 };
    let (mut ours, mut base, mut ours_b, mut base_b) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut shown = 0usize;
    for _ in 0..rounds {
        for q in queries {
            let t = Instant::now();
            shown += std::hint::black_box(index.items(q, MATCHES)).len();
            ours.push(t.elapsed().as_secs_f64() * 1e6);
            let t = Instant::now();
            let n =
                std::hint::black_box(names.iter().filter(|n| n.contains(q)).take(MATCHES).count());
            base.push(t.elapsed().as_secs_f64() * 1e6);
            shown += n;
            let t = Instant::now();
            shown += std::hint::black_box(index.buyers(q, MATCHES)).len();
            ours_b.push(t.elapsed().as_secs_f64() * 1e6);
            let t = Instant::now();
            shown += std::hint::black_box(buyer_names.iter().filter(|n| n.contains(q)).count());
            base_b.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    let (o50, o99) = median_and_p99(ours);
    let (b50, b99) = median_and_p99(base);
    let (ob50, ob99) = median_and_p99(ours_b);
    let (bb50, bb99) = median_and_p99(base_b);
    println!(
        "catalog search, {n_items} items / {n_buyers} buyers, {} keystrokes each ({shown} shown): \
         items {o50:.0} µs median, {o99:.0} µs p99 (baseline substring scan {b50:.0} / {b99:.0} µs, {:.1}x); \
         buyers {ob50:.0} / {ob99:.0} µs (baseline {bb50:.0} / {bb99:.0} µs, {:.1}x); index rebuild {:.1} ms",
        queries.len() * rounds,
        o50 / b50,
        ob50 / bb50,
        rebuild.as_secs_f64() * 1e3,
    );
}
