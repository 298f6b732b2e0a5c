//! The benchmark tools behind two subcommands of the `feria` binary.
//!
//! - `feria seed` ([`seed`]): fills a database (either backend) with realistic, varied
//!   data for benchmarks, fast, and prints what a load generator needs as JSON
//!   ([`SeedReport`]);
//! - `feria bench-baseline` ([`baseline`]): runs the domain query of a benchmarked route in
//!   a loop, in-process, without HTTP.
//!
//! This is a tool, not part of the server: the server library (`feria`) names only the
//! subcommands' argument types ([`SeedArgs`], [`BaselineArgs`]) in its CLI, and only the
//! binary's `main` calls into this crate. It calls the domain crates' public services and
//! never the gateway (Cargo forbids the cycle, and the seeder needs no HTTP): `feria-auth`
//! (platforms with their owners and keys, sessions), `feria-users`,
//! `feria-template-marketplace` and `feria-catalog` (their `bulk` modules),
//! `feria-billing` (credits), `feria-contracts` (S5's contracts), `feria-kernel` (the
//! database). Errors are `anyhow`'s: a tool reports them, nothing matches on them.
//!
//! Platforms, their owners and API keys are made through [`feria_auth::bootstrap`] (so the
//! keys work); credits through the billing crate's `top_up` (so `feria ledger verify`
//! holds); one session per platform through the auth crate; S5's contracts through the
//! contracts crate's service. Everything bulky (users, workspaces, characters, listings
//! with their search-index rows, products, product tags) goes through the owning crate's
//! `bulk` module: multi-row inserts, one transaction per batch, so full-text indexes are
//! filled by the same triggers (SQLite FTS5) or generated columns (PostgreSQL tsvector) as
//! in production.
//!
//! Ids are valid prefixed ULIDs computed from the row number: `<prefix>_<16-char stem>
//! <10-digit row number>`, one random stem per table and run. A load generator builds any
//! id itself from the stem (printed), without a sample: row `n` belongs to platform
//! `(n - 1) % platforms`.

use std::time::{Duration, Instant};

use anyhow::Context;
use feria_kernel::{
    Backend, Currency, Db, DbConn, Mode, Money, PageRequest, PlatformId, Tenant, Timestamp, UserId,
};
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
    /// Credited users of the first platform given a session, for the purchase storm
    /// (their workspaces get room for what they buy).
    #[arg(long, default_value_t = 0)]
    pub buyers: u64,
    /// Open contracts of the first platform for the settle scenario (S5), each of three
    /// lines with two credited buyers and two sellers, made through the contracts crate.
    #[arg(long, default_value_t = 0)]
    pub contracts: u64,
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

    /// The typed id of row `n`.
    fn parse<T: std::str::FromStr>(&self, n: u64) -> anyhow::Result<T> {
        self.id(n)
            .parse()
            .map_err(|_| anyhow::anyhow!("a seeded id of {}", self.prefix))
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
    /// Signed-in credited users of the first platform (`--buyers`).
    #[serde(default)]
    pub buyers: Vec<SeededBuyer>,
    /// Active, cheap (at most 100 USD) listings of the first platform sold by none
    /// of the buyers: the purchase storm's hot listings.
    #[serde(default)]
    pub hot_listings: Vec<String>,
    /// More listings like the hot ones that the storm leaves alone: S3's baseline records
    /// purchases of these (`scripts/bench.sh`).
    #[serde(default)]
    pub spare_listings: Vec<String>,
    /// Open contracts ready to settle (S5).
    #[serde(default)]
    pub contracts: Vec<String>,
    /// Seconds per phase, and in all.
    pub seconds: Vec<(String, f64)>,
    pub total_seconds: f64,
}

/// A signed-in buyer with credits.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeededBuyer {
    pub user_id: String,
    pub access_token: String,
}

/// How many hot listings the report names: S3 buys each (buyer, hot listing) pair once,
/// so with the buyers they are enough pairs for a run; as many spare listings again, for
/// the purchases S3's baseline records.
const HOT_LISTINGS: usize = 50;

/// A pseudo-random number in 0..modulus from row `n` and salt `k` (multiplicative hash).
fn mix(n: u64, k: u64, modulus: u64) -> u64 {
    (n.wrapping_add(k * 1_000_003).wrapping_mul(2_654_435_761) % 4_294_967_291) % modulus.max(1)
}

/// A word for row `n`: skewed (the product of two uniform draws), so a few words are
/// common and most are rare.
fn word(n: u64, k: u64) -> &'static str {
    let w = WORDS.len() as u64;
    let index = mix(n, k, w) * mix(n, k + 50, w) / w;
    WORDS.get(index as usize).copied().unwrap_or("dragon")
}

fn words(n: u64, first_salt: u64, count: u64) -> String {
    (0..count)
        .map(|i| word(n, first_salt + i))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The 1-based user of row `n` of some table, in the same platform as row `n`.
fn user_of(platforms: u64, per_platform: u64, n: u64, salt: u64) -> u64 {
    mix(n, salt, per_platform) * platforms + (n - 1) % platforms + 1
}

/// Rows generated and inserted per database transaction.
const BATCH: u64 = 10_000;

/// Seeds the database at `db` (migrated here) and reports what was made.
pub async fn seed(
    db: &Db,
    args: &SeedArgs,
    schedule: &feria_billing::fees::FeeSchedule,
    mailer: &feria_kernel::mail::Mailer,
) -> anyhow::Result<SeedReport> {
    let started = Instant::now();
    let mut seconds = Vec::new();
    let mut phase = Instant::now();
    let lap = |seconds: &mut Vec<(String, f64)>, name: &str, phase: &mut Instant| {
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
        let platform = feria_auth::bootstrap::create_platform(
            db,
            &format!("Bench market {i}"),
            &format!("bench-{i}-{run}.example.com"),
            &format!("owner-{i}-{run}@bench.example.com"),
        )
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "creating a platform: {}",
                feria_kernel::ApiError::from(e).message
            )
        })?;
        created.push(platform);
    }
    let platform_ids: Vec<PlatformId> = created.iter().map(|c| c.platform.id.clone()).collect();
    lap(&mut seconds, "platforms", &mut phase);

    let user_ids = IdScheme::new("user", users);
    let workspace_ids = IdScheme::new("ws", users);
    let character_ids = IdScheme::new("char", args.listings);
    let listing_ids = IdScheme::new("mkt", args.listings);
    let product_ids = IdScheme::new("prod", args.products);
    // Row n is made `n * step` minutes before now, whole seconds.
    let base = time::OffsetDateTime::now_utc().unix_timestamp();
    let ago = |minutes: u64| -> anyhow::Result<Timestamp> {
        Timestamp::from_unix(base - i64::try_from(minutes)? * 60).context("a seeded time")
    };
    let platform_of = |n: u64| -> anyhow::Result<PlatformId> {
        platform_ids
            .get(usize::try_from((n - 1) % platforms)?)
            .cloned()
            .context("a platform index")
    };

    let mut conn = db.conn().await.context("connecting to the database")?;

    // Users, each with a default workspace that counts the characters seeded into it.
    // Every table is written by the crate that owns it (its `bulk` module), in batches
    // of multi-row inserts, one transaction per batch.
    let seller_of_listing = |n: u64| user_of(platforms, per_platform, n, 1);
    let mut character_counts = vec![0i64; usize::try_from(users)? + 1];
    for n in 1..=args.listings {
        if let Some(count) = character_counts.get_mut(usize::try_from(seller_of_listing(n))?) {
            *count += 1;
        }
    }
    for first in (1..=users).step_by(BATCH as usize) {
        let last = (first + BATCH - 1).min(users);
        let mut people = Vec::new();
        let mut spaces = Vec::new();
        for n in first..=last {
            let at = ago(n * 7)?;
            let id: UserId = user_ids.parse(n)?;
            people.push(feria_users::User {
                id: id.clone(),
                platform_id: platform_of(n)?,
                mode,
                email: format!("bench-{n}-{run}@bench.example.com"),
                role: feria_users::Role::Member,
                username: None,
                name: Some(words(n, 90, 2)),
                first_name: None,
                last_name: None,
                bio: None,
                image: None,
                timezone: None,
                stripe_connect_id: None,
                stripe_customer_id: None,
                charges_enabled: false,
                details_submitted: false,
                authenticated_at: None,
                scheduled_deletion_at: None,
                created_at: at,
                updated_at: at,
            });
            spaces.push(feria_template_marketplace::workspace::Workspace {
                id: workspace_ids.parse(n)?,
                platform_id: platform_of(n)?,
                mode,
                owner_id: id,
                name: "Default".to_owned(),
                is_default: true,
                // Credited users buy in the purchase storm: room for it.
                character_limit: (n <= args.credited_users.min(users))
                    .then(|| {
                        character_counts
                            .get(usize::try_from(n).unwrap_or(0))
                            .copied()
                    })
                    .flatten()
                    .map(|count| count + 1_000),
                character_count: character_counts
                    .get(usize::try_from(n)?)
                    .copied()
                    .unwrap_or(0),
                created_at: at,
                updated_at: at,
            });
        }
        conn.transaction(async |c| -> anyhow::Result<()> {
            feria_users::bulk::insert_users(c, &people)
                .await
                .map_err(|e| anyhow::anyhow!("seeding users: {e}"))?;
            feria_template_marketplace::bulk::insert_workspaces(c, &spaces)
                .await
                .map_err(|e| anyhow::anyhow!("seeding workspaces: {e}"))?;
            Ok(())
        })
        .await?;
    }
    lap(&mut seconds, "users", &mut phase);

    // Characters and one listing per character, by the same seller: 95 % active, priced
    // 1 to 200 USD, 10 % commercial; the listings' search-index rows come with them.
    let (mut characters_seconds, mut listings_seconds) = (0.0, 0.0);
    for first in (1..=args.listings).step_by(BATCH as usize) {
        let last = (first + BATCH - 1).min(args.listings);
        let mut made = Vec::new();
        let mut listed = Vec::new();
        for n in first..=last {
            let seller = seller_of_listing(n);
            let at = ago(n)?;
            let owner: UserId = user_ids.parse(seller)?;
            let niche = NICHES
                .get(mix(n, 2, NICHES.len() as u64) as usize)
                .copied()
                .unwrap_or("fantasy");
            let character_id: feria_template_marketplace::CharacterId = character_ids.parse(n)?;
            let name = words(n, 10, 2);
            made.push(feria_template_marketplace::character::Character {
                id: character_id.clone(),
                platform_id: platform_of(n)?,
                mode,
                workspace_id: workspace_ids.parse(seller)?,
                owner_id: owner.clone(),
                name: name.clone(),
                niche: niche.to_owned(),
                description: words(n, 20, 8),
                avatar_url: None,
                traits: "[]".to_owned(),
                source_listing_id: None,
                source_character_id: None,
                source_seller_id: None,
                license_type: None,
                created_at: at,
                updated_at: at,
                deleted_at: None,
            });
            listed.push(feria_template_marketplace::listing::Listing {
                id: listing_ids.parse(n)?,
                platform_id: platform_of(n)?,
                mode,
                seller_id: owner,
                character_id,
                title: words(n, 30, 3),
                description: words(n, 40, 14),
                niche: niche.to_owned(),
                character_name: name,
                price_minor: 100 + i64::try_from(mix(n, 3, 20_000))?,
                currency: "USD".to_owned(),
                license_type: if mix(n, 4, 100) < 10 {
                    "commercial"
                } else {
                    "personal"
                }
                .to_owned(),
                status: if mix(n, 5, 100) < 5 {
                    "draft"
                } else {
                    "active"
                }
                .to_owned(),
                preview_images: "[]".to_owned(),
                sales_count: 0,
                revenue_minor: 0,
                earnings_minor: 0,
                rating_sum: 0,
                rating_count: 0,
                created_at: at,
                updated_at: at,
            });
        }
        let (c_secs, l_secs) = conn
            .transaction(async |c| -> anyhow::Result<(f64, f64)> {
                let t = Instant::now();
                feria_template_marketplace::bulk::insert_characters(c, &made)
                    .await
                    .map_err(|e| anyhow::anyhow!("seeding characters: {e}"))?;
                let c_secs = t.elapsed().as_secs_f64();
                let t = Instant::now();
                feria_template_marketplace::bulk::insert_listings(c, &listed)
                    .await
                    .map_err(|e| anyhow::anyhow!("seeding listings: {e}"))?;
                Ok((c_secs, t.elapsed().as_secs_f64()))
            })
            .await?;
        characters_seconds += c_secs;
        listings_seconds += l_secs;
    }
    seconds.push(("characters".to_owned(), characters_seconds));
    seconds.push(("listings".to_owned(), listings_seconds));
    phase = Instant::now();

    // Products (1 to 500 USD, two tags each, with their product_tags rows).
    let seller_of_product = |n: u64| user_of(platforms, per_platform, n, 6);
    for first in (1..=args.products).step_by(BATCH as usize) {
        let last = (first + BATCH - 1).min(args.products);
        let mut rows = Vec::new();
        for n in first..=last {
            let at = ago(n)?;
            let tags = serde_json::to_string(&[word(n, 80), word(n, 81)])?;
            rows.push(feria_catalog::Product {
                id: product_ids.parse(n)?,
                platform_id: platform_of(n)?,
                mode,
                user_id: user_ids.parse(seller_of_product(n))?,
                parent_product_id: None,
                name: words(n, 60, 3),
                description: words(n, 70, 10),
                image: None,
                quantity: 1 + i64::try_from(mix(n, 8, 100))?,
                is_enabled: true,
                category: CATEGORIES
                    .get(mix(n, 7, CATEGORIES.len() as u64) as usize)
                    .map(|c| (*c).to_owned()),
                subcategory: None,
                tags,
                price_minor: 100 + i64::try_from(mix(n, 9, 50_000))?,
                currency: "USD".to_owned(),
                use_seasonal_prices: false,
                created_at: at,
                updated_at: at,
                deleted_at: None,
            });
        }
        conn.transaction(async |c| -> anyhow::Result<()> {
            feria_catalog::bulk::insert_products(c, &rows)
                .await
                .map_err(|e| anyhow::anyhow!("seeding products: {e}"))
        })
        .await?;
    }
    lap(&mut seconds, "products", &mut phase);

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
    lap(&mut seconds, "credits", &mut phase);

    // Planner statistics for the new rows.
    let analyze = match backend {
        Backend::Sqlite => "ANALYZE;",
        Backend::Postgres => {
            "ANALYZE users, workspaces, characters, listings, listing_search_terms, products, \
             product_tags;"
        }
    };
    execute(&mut conn, analyze, "analyzing").await?;
    if backend == Backend::Postgres {
        // The search index is read by index-only scans, which need the visibility map
        // that only VACUUM sets (autovacuum would, later); alone: not in a transaction.
        execute(&mut conn, "VACUUM listing_search_terms;", "vacuuming").await?;
    }
    lap(&mut seconds, "analyze", &mut phase);

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
    // Buyers: credited users of platform 0 (n = 1 + k * platforms), signed in.
    let first_platform = created.first().context("no platform")?;
    let tenant = Tenant::new(first_platform.platform.id.clone(), mode);
    let mut buyers = Vec::new();
    let mut n = 1;
    while (buyers.len() as u64) < args.buyers && n <= credited {
        let user: UserId = user_ids.parse(n)?;
        let tokens = feria_auth::sessions::create(&mut conn, &settings, &tenant, &user, None)
            .await
            .map_err(|e| anyhow::anyhow!("creating a session: {e}"))?;
        buyers.push(SeededBuyer {
            user_id: user.to_string(),
            access_token: tokens.access_token,
        });
        n += platforms;
    }
    // Hot listings: platform 0's, active, at most 100 USD, sold by someone not credited.
    let mut hot_listings = Vec::new();
    let mut spare_listings = Vec::new();
    let mut n = 1;
    while spare_listings.len() < HOT_LISTINGS && n <= args.listings {
        let active = mix(n, 5, 100) >= 5;
        let cheap = 100 + mix(n, 3, 20_000) <= 10_000;
        if active && cheap && seller_of_listing(n) > credited {
            if hot_listings.len() < HOT_LISTINGS {
                hot_listings.push(listing_ids.id(n));
            } else {
                spare_listings.push(listing_ids.id(n));
            }
        }
        n += platforms;
    }
    lap(&mut seconds, "sessions", &mut phase);

    // S5's contracts: credited users of platform 0 pay, two of its users without credits
    // are paid.
    let contract_buyers = (0..)
        .map(|k| 1 + k * platforms)
        .take_while(|n| *n <= credited)
        .map(|n| user_ids.parse(n))
        .collect::<anyhow::Result<Vec<UserId>>>()?;
    let mut payees = (0..)
        .map(|k| 1 + k * platforms)
        .skip_while(|n| *n <= credited)
        .take_while(|n| *n <= users)
        .take(2)
        .map(|n| user_ids.parse(n));
    let contracts = match (payees.next(), payees.next()) {
        _ if args.contracts == 0 => Vec::new(),
        (Some(first), Some(second)) => {
            seed_contracts(
                &mut conn,
                &tenant,
                schedule,
                mailer,
                args.contracts,
                &contract_buyers,
                &[first?, second?],
            )
            .await?
        }
        _ => anyhow::bail!("contracts need two users without credits in the first platform"),
    };
    lap(&mut seconds, "contracts", &mut phase);

    Ok(SeedReport {
        backend: backend.name().to_owned(),
        mode: mode.as_str().to_owned(),
        platforms: seeded,
        users: user_ids,
        listings: listing_ids,
        products: product_ids,
        credited_users: credited,
        buyers,
        hot_listings,
        spare_listings,
        contracts,
        words: WORDS.iter().map(|w| (*w).to_owned()).collect(),
        niches: NICHES.iter().map(|w| (*w).to_owned()).collect(),
        seconds,
        total_seconds: started.elapsed().as_secs_f64(),
    })
}

/// S5's contracts: open contracts of three custom lines (10, 6 and 4 USD), two buyers
/// paying half the total each, two sellers owed half the net each, made through the
/// contracts crate's service (the calls the HTTP routes make), so that each settles from
/// the buyers' credits. Buyers are the credited users of the first platform, in turn;
/// sellers two of its users without credits. Returns the contracts' ids.
async fn seed_contracts(
    conn: &mut DbConn,
    tenant: &Tenant,
    schedule: &feria_billing::fees::FeeSchedule,
    mailer: &feria_kernel::mail::Mailer,
    count: u64,
    buyers: &[UserId],
    sellers: &[UserId; 2],
) -> anyhow::Result<Vec<String>> {
    use feria_contracts::model::{NewBuyer, NewContract, NewItem, NewSeller};
    use feria_contracts::service;
    use rust_decimal::Decimal;

    if buyers.len() < 2 {
        anyhow::bail!("contracts need two credited users in the first platform");
    }
    let actor = feria_contracts::Actor::api_key();
    let failed = |what: &'static str| {
        move |e: feria_contracts::ContractError| anyhow::anyhow!("seeding a contract ({what}): {e}")
    };
    let mut ids = Vec::new();
    for n in 0..count {
        let made = service::create(
            conn,
            tenant,
            schedule,
            &actor,
            NewContract {
                notes: Some(format!("S5 contract {n}")),
                ..Default::default()
            },
        )
        .await
        .map_err(failed("create"))?;
        let id = made.id.clone();
        let mut shown = made;
        for (line, cents) in [1000i64, 600, 400].into_iter().enumerate() {
            shown = service::add_item(
                conn,
                tenant,
                schedule,
                &actor,
                &id,
                NewItem {
                    product_id: None,
                    name: Some(format!("Line {line}")),
                    unit_price: Some(Decimal::new(cents, 2)),
                    quantity: None,
                },
            )
            .await
            .map_err(failed("item"))?;
        }
        let half = |amount: Decimal| -> (Decimal, Decimal) {
            let first = (amount / Decimal::TWO).round_dp(2);
            (first, amount - first)
        };
        let (first_due, second_due) = half(shown.total);
        let pair = buyers
            .iter()
            .cycle()
            .skip(usize::try_from(n)? % buyers.len());
        for (buyer, due) in pair.zip([first_due, second_due]) {
            service::add_buyer(
                conn,
                tenant,
                schedule,
                &actor,
                &id,
                NewBuyer {
                    user_id: buyer.clone(),
                    due: Some(due),
                },
            )
            .await
            .map_err(failed("buyer"))?;
        }
        let (first_owed, second_owed) = half(shown.net);
        for (seller, owed) in sellers.iter().zip([first_owed, second_owed]) {
            service::add_seller(
                conn,
                tenant,
                schedule,
                &actor,
                &id,
                NewSeller {
                    user_id: seller.clone(),
                    owed: Some(owed),
                },
            )
            .await
            .map_err(failed("seller"))?;
        }
        service::send(conn, tenant, schedule, &actor, mailer, &id)
            .await
            .map_err(failed("send"))?;
        ids.push(id.to_string());
    }
    Ok(ids)
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
    /// The same browse from the full-text engine alone (the obvious query: GIN or FTS5
    /// match, ranked by `ts_rank` or `bm25`): `listing::browse_full_text`.
    BrowseFullText,
    /// Not a load: the top 20 of `browse` against `browse_full_text` over
    /// `--samples` random browse queries (the share of the reference's ids browse
    /// returns, per query; both empty counts as 1).
    Overlap,
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
    /// Queries compared by `--scenario overlap`.
    #[arg(long, default_value_t = 50)]
    pub samples: u64,
}

/// What `--scenario overlap` measured.
#[derive(Debug, Clone, Serialize)]
pub struct OverlapReport {
    pub queries: u64,
    /// Queries where the reference found at least one listing.
    pub non_empty: u64,
    pub mean: f64,
    pub min: f64,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overlap: Option<OverlapReport>,
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
/// the current thread (call it inside a `tokio::task::LocalSet`, such as an actix
/// `System`): SQLite
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
    if args.scenario == BaselineScenario::Overlap {
        return overlap(db, &tenant, &report, args).await;
    }
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..args.concurrency {
        let db = db.clone();
        let tenant = tenant.clone();
        let report = report.clone();
        let scenario = args.scenario;
        tasks.push(tokio::task::spawn_local(async move {
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
                    BaselineScenario::Browse
                    | BaselineScenario::BrowseFullText
                    | BaselineScenario::Overlap => {
                        let filter = browse_filter(&report, rng.below(u64::MAX));
                        match (db.conn().await, PageRequest::new(1, 20)) {
                            (Ok(mut conn), Ok(page)) => {
                                if scenario == BaselineScenario::BrowseFullText {
                                    feria_template_marketplace::listing::browse_full_text(
                                        &mut conn, &tenant, &filter, page,
                                    )
                                    .await
                                    .is_ok()
                                } else {
                                    feria_template_marketplace::listing::browse(
                                        &mut conn, &tenant, &filter, page,
                                    )
                                    .await
                                    .is_ok()
                                }
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
        overlap: None,
    })
}

/// Browse's top 20 against the full-text engine's over `args.samples` random queries
/// drawn like the load's.
async fn overlap(
    db: &Db,
    tenant: &Tenant,
    report: &SeedReport,
    args: &BaselineArgs,
) -> anyhow::Result<BaselineReport> {
    let started = Instant::now();
    let mut rng = Rng(0x5DEE_CE66_D1CE_4E5B);
    let page = PageRequest::new(1, 20).map_err(|e| anyhow::anyhow!("a page: {e:?}"))?;
    let mut conn = db.conn().await.context("connecting to the database")?;
    let (mut sum, mut min, mut non_empty) = (0.0, 1.0f64, 0u64);
    for _ in 0..args.samples {
        let filter = browse_filter(report, rng.below(u64::MAX));
        let ids = |page: feria_template_marketplace::listing::ListingPage| -> Vec<String> {
            page.listings
                .into_iter()
                .map(|l| l.id.to_string())
                .collect()
        };
        let got = ids(feria_template_marketplace::listing::browse(
            &mut conn, tenant, &filter, page,
        )
        .await
        .map_err(|e| anyhow::anyhow!("browse: {e}"))?);
        let want = ids(feria_template_marketplace::listing::browse_full_text(
            &mut conn, tenant, &filter, page,
        )
        .await
        .map_err(|e| anyhow::anyhow!("browse_full_text: {e}"))?);
        let share = if want.is_empty() {
            if got.is_empty() { 1.0 } else { 0.0 }
        } else {
            non_empty += 1;
            want.iter().filter(|id| got.contains(id)).count() as f64 / want.len() as f64
        };
        sum += share;
        min = min.min(share);
    }
    let queries = args.samples.max(1);
    Ok(BaselineReport {
        scenario: "overlap".to_owned(),
        backend: db.backend().name().to_owned(),
        concurrency: 1,
        requests: args.samples,
        errors: 0,
        seconds: started.elapsed().as_secs_f64(),
        requests_per_second: 0.0,
        p50_ms: 0.0,
        p99_ms: 0.0,
        overlap: Some(OverlapReport {
            queries: args.samples,
            non_empty,
            mean: sum / queries as f64,
            min,
        }),
    })
}
