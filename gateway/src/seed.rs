//! `feria seed`: fills a database (either backend) with realistic, varied data for
//! benchmarks, fast, and prints what a load generator needs as JSON; `feria bench-baseline`:
//! runs the domain query of a benchmarked route in a loop, in-process, without HTTP.
//!
//! Platforms, their owners and API keys are made through [`crate::bootstrap`] (so the keys
//! work); credits through the billing crate's `top_up` (so `feria ledger verify` holds);
//! one session per platform through the auth crate. Everything bulky (users, workspaces,
//! characters, listings, products, product tags) is set-based SQL: one `INSERT ... SELECT`
//! per table over `generate_series` (PostgreSQL) or a `WITH RECURSIVE` counter (SQLite),
//! so full-text indexes are filled by the same triggers (SQLite FTS5) or generated
//! columns (PostgreSQL tsvector) as in production.
//!
//! Ids are valid prefixed ULIDs computed from the row number: `<prefix>_<16-char stem>
//! <10-digit row number>`, one random stem per table and run. A load generator builds any
//! id itself from the stem (printed), without a sample: row `n` belongs to platform
//! `(n - 1) % platforms`.

use std::time::{Duration, Instant};

use anyhow::Context;
use feria_kernel::{Backend, Currency, Db, DbConn, Mode, Money, PageRequest, PlatformId, Tenant};
use serde::{Deserialize, Serialize};

/// Words titles and descriptions are drawn from (skewed: early words are frequent).
pub const WORDS: &[&str] = &[
    "dragon",
    "wizard",
    "knight",
    "castle",
    "forest",
    "river",
    "shadow",
    "crystal",
    "storm",
    "ember",
    "frost",
    "silver",
    "golden",
    "ancient",
    "hidden",
    "lost",
    "brave",
    "quiet",
    "wild",
    "dark",
    "bright",
    "noble",
    "clever",
    "gentle",
    "fierce",
    "lonely",
    "merry",
    "mystic",
    "royal",
    "secret",
    "sacred",
    "rogue",
    "pirate",
    "captain",
    "sailor",
    "ocean",
    "island",
    "harbor",
    "desert",
    "canyon",
    "mountain",
    "valley",
    "meadow",
    "garden",
    "orchard",
    "village",
    "city",
    "tower",
    "temple",
    "library",
    "scholar",
    "alchemist",
    "healer",
    "hunter",
    "ranger",
    "archer",
    "bard",
    "poet",
    "painter",
    "sculptor",
    "baker",
    "brewer",
    "merchant",
    "trader",
    "banker",
    "detective",
    "inspector",
    "spy",
    "agent",
    "courier",
    "pilot",
    "engineer",
    "robot",
    "android",
    "cyborg",
    "starship",
    "galaxy",
    "planet",
    "comet",
    "nebula",
    "orbit",
    "station",
    "colony",
    "frontier",
    "outpost",
    "empire",
    "rebel",
    "queen",
    "king",
    "prince",
    "princess",
    "duke",
    "witch",
    "oracle",
    "prophet",
    "monk",
    "nun",
    "priest",
    "vampire",
    "werewolf",
    "ghost",
    "spirit",
    "demon",
    "angel",
    "fairy",
    "elf",
    "dwarf",
    "giant",
    "goblin",
    "troll",
    "unicorn",
    "phoenix",
    "griffin",
    "kraken",
    "serpent",
    "wolf",
    "fox",
    "raven",
    "owl",
    "falcon",
    "tiger",
    "lion",
    "bear",
    "stag",
    "horse",
    "cat",
    "dog",
    "rabbit",
    "turtle",
    "dolphin",
    "whale",
    "shark",
    "tea",
    "coffee",
    "bread",
    "cheese",
    "wine",
    "honey",
    "apple",
    "cherry",
    "lemon",
    "pepper",
    "velvet",
    "leather",
    "marble",
    "granite",
    "copper",
    "bronze",
    "iron",
    "steel",
    "glass",
    "paper",
    "ink",
    "quill",
    "map",
    "compass",
    "lantern",
    "candle",
    "mirror",
    "clock",
    "key",
    "door",
    "bridge",
    "road",
    "train",
    "carriage",
    "ship",
    "balloon",
    "airship",
    "submarine",
    "winter",
    "spring",
    "summer",
    "autumn",
    "dawn",
    "dusk",
    "midnight",
    "twilight",
    "eclipse",
    "thunder",
    "rain",
    "snow",
    "fog",
    "wind",
    "fire",
    "water",
    "earth",
    "stone",
    "flame",
    "song",
    "dance",
    "story",
    "legend",
    "myth",
    "riddle",
    "puzzle",
    "quest",
    "journey",
    "voyage",
    "battle",
    "duel",
    "heist",
    "rescue",
    "escape",
    "wedding",
    "festival",
    "market",
    "tavern",
    "inn",
    "kitchen",
    "workshop",
    "laboratory",
    "observatory",
    "academy",
    "school",
    "tutor",
    "mentor",
    "coach",
    "companion",
    "friend",
    "rival",
    "nemesis",
    "stranger",
    "traveler",
    "wanderer",
    "nomad",
    "exile",
    "heir",
    "orphan",
    "twin",
    "sister",
    "brother",
    "grandmother",
    "uncle",
    "neighbor",
    "therapist",
    "chef",
    "gardener",
    "astronomer",
];

/// Niches of characters and listings (lower-case, as the API stores them).
pub const NICHES: &[&str] = &[
    "fantasy",
    "scifi",
    "romance",
    "horror",
    "mystery",
    "comedy",
    "anime",
    "history",
    "business",
    "education",
];

/// Product categories.
pub const CATEGORIES: &[&str] = &[
    "books", "games", "art", "music", "clothing", "home", "garden", "toys", "tools", "food",
];

/// Sizes of a seeding run.
#[derive(Debug, Clone, clap::Args)]
pub struct SeedArgs {
    /// Template listings (each with its own character), across all platforms.
    #[arg(long, default_value_t = 20_000)]
    pub listings: u64,
    /// Products, across all platforms.
    #[arg(long, default_value_t = 20_000)]
    pub products: u64,
    /// Users (sellers and buyers), across all platforms.
    #[arg(long, default_value_t = 1_000)]
    pub users: u64,
    /// Platforms (tenants); rows are spread over them round-robin.
    #[arg(long, default_value_t = 3)]
    pub platforms: u64,
    /// Users given credits (the first ones), through the billing crate: one ledger entry
    /// each, so this is the slow part; 0 for none.
    #[arg(long, default_value_t = 200)]
    pub credited_users: u64,
    /// Credits per credited user, in USD cents.
    #[arg(long, default_value_t = 100_000)]
    pub credit_minor: i64,
}

/// How the load generator builds ids of one table: `<prefix>_<stem><%010d of n>`, where
/// the rows of platform `p` (0-based) are `n = p + 1 + k * platforms`, `k < per_platform`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdScheme {
    pub prefix: String,
    pub stem: String,
    pub count: u64,
}

impl IdScheme {
    fn new(prefix: &str, count: u64) -> IdScheme {
        // A fresh ULID's first 16 characters: the timestamp and 30 random bits. Any
        // digits after them keep it a valid ULID.
        let ulid = ulid::Ulid::new().to_string();
        IdScheme {
            prefix: prefix.to_owned(),
            stem: ulid.chars().take(16).collect(),
            count,
        }
    }

    /// The id of row `n` (1-based).
    pub fn id(&self, n: u64) -> String {
        format!("{}_{}{:010}", self.prefix, self.stem, n)
    }

    /// The SQL expression of the id of row `expr`.
    fn sql(&self, backend: Backend, expr: &str) -> String {
        format!("'{}_{}' || {}", self.prefix, self.stem, pad(backend, expr))
    }

    fn like(&self) -> String {
        format!("{}_{}%", self.prefix, self.stem)
    }
}

/// One seeded platform.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeededPlatform {
    pub id: String,
    /// The test-mode key (data is seeded in test mode).
    pub api_key: String,
    /// A session of a member of this platform, for session-only routes.
    pub user_id: String,
    pub access_token: String,
    pub refresh_token: String,
}

/// What `feria seed` prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeedReport {
    pub backend: String,
    pub mode: String,
    pub platforms: Vec<SeededPlatform>,
    pub users: IdScheme,
    pub listings: IdScheme,
    pub products: IdScheme,
    pub credited_users: u64,
    pub words: Vec<String>,
    pub niches: Vec<String>,
    /// Seconds per phase, and in all.
    pub seconds: Vec<(String, f64)>,
    pub total_seconds: f64,
}

fn pad(backend: Backend, expr: &str) -> String {
    match backend {
        Backend::Sqlite => format!("printf('%010d', {expr})"),
        Backend::Postgres => format!("lpad(({expr})::text, 10, '0')"),
    }
}

/// `FROM` item giving the column `seq.n` = 1..=count.
fn series(backend: Backend, count: u64) -> String {
    match backend {
        Backend::Sqlite => format!(
            "(WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {count}) \
             SELECT n FROM s) AS seq"
        ),
        Backend::Postgres => format!("generate_series(1::bigint, {count}::bigint) AS seq(n)"),
    }
}

/// A pseudo-random number in 0..modulus from row `n` and salt `k` (multiplicative hash).
fn hash(n: &str, k: u64, modulus: u64) -> String {
    format!(
        "(((({n}) + {salt}) * 2654435761) % 4294967291) % {modulus}",
        salt = k * 1_000_003
    )
}

/// A word for row `n`: skewed, so a few words are common and most are rare.
fn word(backend: Backend, n: &str, k: u64) -> String {
    let w = WORDS.len() as u64;
    let index = format!("(({}) * ({})) / {w}", hash(n, k, w), hash(n, k + 50, w));
    match backend {
        Backend::Sqlite => format!("(SELECT w FROM bench_words WHERE i = {index})"),
        Backend::Postgres => {
            let quoted: Vec<String> = WORDS.iter().map(|w| format!("'{w}'")).collect();
            format!(
                "((ARRAY[{}]::text[])[(({index}) + 1)::int])",
                quoted.join(",")
            )
        }
    }
}

fn words(backend: Backend, n: &str, first_salt: u64, count: u64) -> String {
    (0..count)
        .map(|i| word(backend, n, first_salt + i))
        .collect::<Vec<_>>()
        .join(" || ' ' || ")
}

/// A timestamp `minutes` before the run's base time.
fn minutes_ago(backend: Backend, base: &str, minutes: &str) -> String {
    match backend {
        Backend::Sqlite => format!("datetime('{base}', '-' || ({minutes}) || ' minutes')"),
        Backend::Postgres => {
            format!("(TIMESTAMP '{base}' - ({minutes}) * INTERVAL '1 minute')")
        }
    }
}

/// `CASE` over the platform index `(n - 1) % platforms`.
fn platform_of(ids: &[PlatformId], n: &str) -> String {
    let mut sql = format!("CASE (({n}) - 1) % {} ", ids.len());
    for (i, id) in ids.iter().enumerate() {
        sql.push_str(&format!("WHEN {i} THEN '{id}' "));
    }
    sql.push_str("END");
    sql
}

/// The 1-based user of row `n` of some table, in the same platform as row `n`.
fn user_of(platforms: u64, per_platform: u64, n: &str, salt: u64) -> String {
    format!(
        "({} * {platforms} + (({n}) - 1) % {platforms} + 1)",
        hash(n, salt, per_platform)
    )
}

/// Seeds the database at `db` (migrated here) and reports what was made.
pub async fn seed(db: &Db, args: &SeedArgs) -> anyhow::Result<SeedReport> {
    let started = Instant::now();
    let mut seconds = Vec::new();
    let mut phase = Instant::now();
    let mut lap = |name: &str, phase: &mut Instant| {
        seconds.push((name.to_owned(), phase.elapsed().as_secs_f64()));
        *phase = Instant::now();
    };

    db.migrate().await.context("applying migrations")?;
    let backend = db.backend();
    let platforms = args.platforms.max(1);
    let per_platform = args.users.div_ceil(platforms).max(1);
    let users = per_platform * platforms;
    let mode = Mode::Test;
    let run = ulid::Ulid::new().to_string().to_lowercase();

    let mut created = Vec::new();
    for i in 0..platforms {
        let platform = crate::bootstrap::create_platform(
            db,
            &format!("Bench market {i}"),
            &format!("bench-{i}-{run}.example.com"),
            &format!("owner-{i}-{run}@bench.example.com"),
        )
        .await
        .map_err(|e| anyhow::anyhow!("creating a platform: {}", e.error.message))?;
        created.push(platform);
    }
    let platform_ids: Vec<PlatformId> = created.iter().map(|c| c.platform.id.clone()).collect();
    lap("platforms", &mut phase);

    let user_ids = IdScheme::new("user", users);
    let workspace_ids = IdScheme::new("ws", users);
    let character_ids = IdScheme::new("char", args.listings);
    let listing_ids = IdScheme::new("mkt", args.listings);
    let product_ids = IdScheme::new("prod", args.products);
    let base = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second]"
        ))
        .context("formatting the base time")?;
    let m = mode.as_str();
    let n = "seq.n";

    let mut conn = db.conn().await.context("connecting to the database")?;
    if backend == Backend::Sqlite {
        let values: Vec<String> = WORDS
            .iter()
            .enumerate()
            .map(|(i, w)| format!("({i}, '{w}')"))
            .collect();
        conn.batch_execute(&format!(
            "DROP TABLE IF EXISTS temp.bench_words; \
             CREATE TEMP TABLE bench_words (i INTEGER PRIMARY KEY, w TEXT NOT NULL); \
             INSERT INTO bench_words (i, w) VALUES {};",
            values.join(", ")
        ))
        .await
        .context("creating the word table")?;
    }

    // Users, each with a default workspace.
    let sql = format!(
        "INSERT INTO users (id, platform_id, mode, email, role, name, charges_enabled, \
         details_submitted, created_at, updated_at) \
         SELECT {id}, {platform}, '{m}', 'bench-' || {n} || '-{run}@bench.example.com', 'member', \
         {name}, FALSE, FALSE, {at}, {at} FROM {series}; \
         INSERT INTO workspaces (id, platform_id, mode, owner_id, name, is_default, \
         character_count, created_at, updated_at) \
         SELECT {ws}, {platform}, '{m}', {id}, 'Default', TRUE, 0, {at}, {at} FROM {series};",
        id = user_ids.sql(backend, n),
        ws = workspace_ids.sql(backend, n),
        platform = platform_of(&platform_ids, n),
        name = words(backend, n, 90, 2),
        at = minutes_ago(backend, &base, &format!("{n} * 7")),
        series = series(backend, users),
    );
    execute(&mut conn, &sql, "seeding users").await?;
    lap("users", &mut phase);

    // Characters and one listing per character, by the same seller.
    let seller = user_of(platforms, per_platform, n, 1);
    let niche = case_of(NICHES, &hash(n, 2, NICHES.len() as u64));
    let at = minutes_ago(backend, &base, n);
    let sql = format!(
        "INSERT INTO characters (id, platform_id, mode, workspace_id, owner_id, name, niche, \
         description, traits, created_at, updated_at) \
         SELECT {chr}, {platform}, '{m}', {ws}, {owner}, {name}, {niche}, {desc}, '[]', {at}, {at} \
         FROM {series};",
        chr = character_ids.sql(backend, n),
        platform = platform_of(&platform_ids, n),
        ws = workspace_ids.sql(backend, &seller),
        owner = user_ids.sql(backend, &seller),
        name = words(backend, n, 10, 2),
        desc = words(backend, n, 20, 8),
        series = series(backend, args.listings),
    );
    execute(&mut conn, &sql, "seeding characters").await?;
    lap("characters", &mut phase);

    let chr_name = words(backend, n, 10, 2);
    let sql = format!(
        "INSERT INTO listings (id, platform_id, mode, seller_id, character_id, title, \
         description, niche, character_name, price_minor, currency, license_type, status, \
         preview_images, created_at, updated_at) \
         SELECT {id}, {platform}, '{m}', {owner}, {chr}, {title}, {desc}, {niche}, {chr_name}, \
         100 + {price}, 'USD', \
         CASE WHEN {lic} < 10 THEN 'commercial' ELSE 'personal' END, \
         CASE WHEN {status} < 5 THEN 'draft' ELSE 'active' END, '[]', {at}, {at} \
         FROM {series};",
        id = listing_ids.sql(backend, n),
        platform = platform_of(&platform_ids, n),
        owner = user_ids.sql(backend, &seller),
        chr = character_ids.sql(backend, n),
        title = words(backend, n, 30, 3),
        desc = words(backend, n, 40, 14),
        price = hash(n, 3, 20_000),
        lic = hash(n, 4, 100),
        status = hash(n, 5, 100),
        series = series(backend, args.listings),
    );
    execute(&mut conn, &sql, "seeding listings").await?;
    let sql = format!(
        "UPDATE workspaces SET character_count = (SELECT COUNT(*) FROM characters c \
         WHERE c.workspace_id = workspaces.id AND c.deleted_at IS NULL) \
         WHERE id LIKE '{}';",
        workspace_ids.like()
    );
    execute(&mut conn, &sql, "counting characters").await?;
    lap("listings", &mut phase);

    // Products, and their tags one per row.
    let seller = user_of(platforms, per_platform, n, 6);
    let category = case_of(CATEGORIES, &hash(n, 7, CATEGORIES.len() as u64));
    let sql = format!(
        "INSERT INTO products (id, platform_id, mode, user_id, name, description, quantity, \
         is_enabled, category, tags, price_minor, currency, use_seasonal_prices, created_at, \
         updated_at) \
         SELECT {id}, {platform}, '{m}', {owner}, {name}, {desc}, 1 + {qty}, TRUE, {category}, \
         '[\"' || {tag1} || '\",\"' || {tag2} || '\"]', 100 + {price}, 'USD', FALSE, {at}, {at} \
         FROM {series};",
        id = product_ids.sql(backend, n),
        platform = platform_of(&platform_ids, n),
        owner = user_ids.sql(backend, &seller),
        name = words(backend, n, 60, 3),
        desc = words(backend, n, 70, 10),
        qty = hash(n, 8, 100),
        tag1 = word(backend, n, 80),
        tag2 = word(backend, n, 81),
        price = hash(n, 9, 50_000),
        series = series(backend, args.products),
    );
    execute(&mut conn, &sql, "seeding products").await?;
    let tags = match backend {
        Backend::Sqlite => "json_each(p.tags) AS j",
        Backend::Postgres => "jsonb_array_elements_text(p.tags::jsonb) AS j(value)",
    };
    let sql = format!(
        "INSERT INTO product_tags (product_id, platform_id, mode, tag) \
         SELECT DISTINCT p.id, p.platform_id, p.mode, j.value FROM products p, {tags} \
         WHERE p.id LIKE '{}' ON CONFLICT DO NOTHING;",
        product_ids.like()
    );
    execute(&mut conn, &sql, "seeding product tags").await?;
    lap("products", &mut phase);

    // Credits through the ledger, in batches of one transaction each.
    let credited = args.credited_users.min(users);
    let mut n_user = 1;
    while n_user <= credited {
        let last = (n_user + 499).min(credited);
        let first = n_user;
        let ids = &platform_ids;
        let scheme = &user_ids;
        let amount = args.credit_minor;
        conn.transaction(async move |c| -> Result<(), anyhow::Error> {
            for u in first..=last {
                let platform = ids
                    .get(usize::try_from((u - 1) % platforms)?)
                    .context("a platform index")?;
                let tenant = Tenant::new(platform.clone(), mode);
                let user: feria_kernel::UserId =
                    scheme.id(u).parse().context("a seeded user id")?;
                feria_billing::credits::top_up(
                    c,
                    &tenant,
                    &user,
                    Money::from_minor(amount, Currency::USD),
                    None,
                )
                .await
                .context("topping up credits")?;
            }
            Ok(())
        })
        .await?;
        n_user = last + 1;
    }
    lap("credits", &mut phase);

    // Planner statistics for the new rows.
    let analyze = match backend {
        Backend::Sqlite => "ANALYZE;",
        Backend::Postgres => {
            "ANALYZE users, workspaces, characters, listings, products, product_tags;"
        }
    };
    execute(&mut conn, analyze, "analyzing").await?;
    lap("analyze", &mut phase);

    // One signed-in member per platform: user number p + 1 is in platform p.
    let settings = feria_auth::AuthSettings::default();
    let mut seeded = Vec::new();
    for (i, made) in created.iter().enumerate() {
        let tenant = Tenant::new(made.platform.id.clone(), mode);
        let user_id = user_ids.id(i as u64 + 1);
        let user: feria_kernel::UserId = user_id.parse().context("a seeded user id")?;
        let tokens = feria_auth::sessions::create(&mut conn, &settings, &tenant, &user, None)
            .await
            .map_err(|e| anyhow::anyhow!("creating a session: {e}"))?;
        seeded.push(SeededPlatform {
            id: made.platform.id.to_string(),
            api_key: made.api_keys.test.clone(),
            user_id,
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
        });
    }
    lap("sessions", &mut phase);

    Ok(SeedReport {
        backend: backend.name().to_owned(),
        mode: mode.as_str().to_owned(),
        platforms: seeded,
        users: user_ids,
        listings: listing_ids,
        products: product_ids,
        credited_users: credited,
        words: WORDS.iter().map(|w| (*w).to_owned()).collect(),
        niches: NICHES.iter().map(|w| (*w).to_owned()).collect(),
        seconds,
        total_seconds: started.elapsed().as_secs_f64(),
    })
}

fn case_of(list: &[&str], index: &str) -> String {
    let mut sql = format!("CASE {index} ");
    for (i, w) in list.iter().enumerate() {
        sql.push_str(&format!("WHEN {i} THEN '{w}' "));
    }
    sql.push_str("END");
    sql
}

async fn execute(conn: &mut DbConn, sql: &str, what: &'static str) -> anyhow::Result<()> {
    conn.batch_execute(sql).await.context(what)
}

// ---- in-process baseline -------------------------------------------------------------

/// The domain query of a benchmarked route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BaselineScenario {
    /// `GET /api/v1/products/:id`: `feria_catalog::product::read` as an API key.
    Product,
    /// `GET /api/v1/marketplace?q=..&niche=..&min_price=..&max_price=..&page_size=20`:
    /// `feria_template_marketplace::listing::browse`.
    Browse,
}

#[derive(Debug, Clone, clap::Args)]
pub struct BaselineArgs {
    /// The JSON `feria seed` printed.
    #[arg(long)]
    pub seed_report: std::path::PathBuf,
    #[arg(long, value_enum)]
    pub scenario: BaselineScenario,
    /// Concurrent callers (tasks), each with its own pooled connection.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
}

/// What `feria bench-baseline` prints.
#[derive(Debug, Clone, Serialize)]
pub struct BaselineReport {
    pub scenario: String,
    pub backend: String,
    pub concurrency: usize,
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    pub requests_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// xorshift64*: enough randomness to pick ids and words, no dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

/// Random parameters of one call, the same distribution the wrk scripts use.
pub fn browse_filter(
    report: &SeedReport,
    rng_value: u64,
) -> feria_template_marketplace::listing::ListingFilter {
    let mut rng = Rng(rng_value | 1);
    let word = &report.words[rng.below(report.words.len() as u64) as usize];
    let niche = &report.niches[rng.below(report.niches.len() as u64) as usize];
    let min = rng.below(150);
    feria_template_marketplace::listing::ListingFilter {
        q: Some(word.clone()),
        niche: Some(niche.clone()),
        min_price: Some(min.to_string()),
        max_price: Some((min + 50).to_string()),
        page_size: Some(20),
        ..Default::default()
    }
}

/// Runs the scenario's domain call in a loop from `concurrency` tasks for `seconds`, on
/// the current thread (call it inside an actix or tokio current-thread runtime): SQLite
/// work runs on the runtime's blocking threads, PostgreSQL's in the database.
pub async fn baseline(db: &Db, args: &BaselineArgs) -> anyhow::Result<BaselineReport> {
    let raw = std::fs::read_to_string(&args.seed_report)
        .with_context(|| format!("reading {}", args.seed_report.display()))?;
    let report: SeedReport = serde_json::from_str(&raw).context("parsing the seed report")?;
    let platforms = report.platforms.len() as u64;
    let platform = report
        .platforms
        .first()
        .context("no platform in the report")?;
    let tenant = Tenant::new(platform.id.parse().context("a platform id")?, Mode::Test);
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..args.concurrency {
        let db = db.clone();
        let tenant = tenant.clone();
        let report = report.clone();
        let scenario = args.scenario;
        tasks.push(actix_web::rt::spawn(async move {
            let mut rng =
                Rng(0x9E37_79B9_7F4A_7C15 ^ (task as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407));
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let one = Instant::now();
                let ok = match scenario {
                    BaselineScenario::Product => {
                        let per = report.products.count / platforms;
                        let n = 1 + rng.below(per) * platforms;
                        match report.products.id(n).parse::<feria_catalog::ProductId>() {
                            Ok(id) => match db.conn().await {
                                Ok(mut conn) => feria_catalog::product::read(
                                    &mut conn,
                                    &tenant,
                                    &feria_catalog::Actor::api_key(),
                                    &id,
                                )
                                .await
                                .is_ok(),
                                Err(_) => false,
                            },
                            Err(_) => false,
                        }
                    }
                    BaselineScenario::Browse => {
                        let filter = browse_filter(&report, rng.below(u64::MAX));
                        match (db.conn().await, PageRequest::new(1, 20)) {
                            (Ok(mut conn), Ok(page)) => {
                                feria_template_marketplace::listing::browse(
                                    &mut conn, &tenant, &filter, page,
                                )
                                .await
                                .is_ok()
                            }
                            _ => false,
                        }
                    }
                };
                if ok {
                    latencies.push(one.elapsed());
                } else {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (mut l, e) = task.await.context("a baseline task")?;
        latencies.append(&mut l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let quantile = |q: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies
            .get(i.min(latencies.len() - 1))
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0)
    };
    Ok(BaselineReport {
        scenario: format!("{:?}", args.scenario).to_lowercase(),
        backend: db.backend().name().to_owned(),
        concurrency: args.concurrency,
        requests: latencies.len() as u64,
        errors,
        seconds: elapsed,
        requests_per_second: latencies.len() as f64 / elapsed,
        p50_ms: quantile(0.50),
        p99_ms: quantile(0.99),
    })
}
