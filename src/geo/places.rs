//! Built-in location tables: public-cloud regions, country centroids and
//! continents, as plain static data with allocation-free lookups.
//!
//! Every table is a slice sorted by key (byte order) and is searched with
//! [`slice::binary_search_by`] after the caller's key has been ASCII-case-folded
//! into a small stack buffer, so a lookup never allocates (these run on the DNS
//! query path). The unit tests check that every table is sorted and free of
//! duplicate keys.
//!
//! Where the data comes from:
//!
//! * **Cloud regions** ([`cloud_region`]): the city (or metro area) each
//!   region is documented to be in, to roughly 0.1 degree.
//!   - Azure: the `latitude`/`longitude` that Azure publishes in its region
//!     metadata (`az account list-locations`) where known; regions whose
//!     published values were not at hand (newer regions, sovereign and
//!     government clouds) use the coordinates of their city and are marked
//!     "approximate" in the table.
//!   - AWS: the city named in the region's display name (AWS does not publish
//!     coordinates); GovCloud (US-West) is assumed to be in Oregon.
//!   - Google Cloud: the data-centre town listed in Google's region list.
//! * **Country centroids** ([`country_centroid`]): the `countries.csv`
//!   centroid list of Google's DSPL canonical dataset
//!   (`github.com/google/dspl`, `samples/google/canonical/countries.csv`),
//!   rounded to 4 decimals. Changes from that list: the obsolete `AN`
//!   (Netherlands Antilles) and non-ISO `GZ` (Gaza Strip) entries are dropped;
//!   `AX`, `BL`, `BQ`, `CW`, `MF`, `SS`, `SX` (missing there) and `UM` (no
//!   coordinates there) are added by hand, using the main island / Wake Island
//!   for the island territories; `SH` is moved onto Saint Helena island
//!   because the source point lies in open ocean. `XK` (Kosovo, a
//!   user-assigned code used by GeoIP databases) is kept, so the table covers
//!   all 249 ISO 3166-1 alpha-2 codes plus `XK`.
//! * **Country continents** ([`country_continent`]): the continent codes used
//!   by MaxMind's GeoLite2 country database (`continent_code` in
//!   `GeoLite2-Country-Locations-en.csv`), so they agree with the GeoIP data
//!   the server resolves clients with (e.g. `RU` and `CY` are `EU`, `TR` and the
//!   Caucasus are `AS`, `TL` is `OC`, sub-Antarctic islands are `AN`).
//! * **Continent points** ([`continent_centroid`]): hand-picked representative
//!   points near the middle of each continent's land mass (rounded; they are
//!   only meant as a coarse fallback when nothing finer is known).

use super::LatLon;

/// Longest key any table holds, with room to spare; longer inputs cannot
/// match and are rejected without a search.
const MAX_KEY_LEN: usize = 32;

/// A `(key, latitude, longitude)` table, sorted by key.
type PointTable = [(&'static str, f64, f64)];

/// Which ASCII case a table's keys are stored in.
#[derive(Clone, Copy)]
enum Case {
    Lower,
    Upper,
}

/// Binary-searches `table` (sorted by `key_of`) for `name`, folded to `case`
/// in a stack buffer first.
fn find<'t, T>(
    table: &'t [T],
    key_of: impl Fn(&T) -> &str,
    name: &str,
    case: Case,
) -> Option<&'t T> {
    let mut buf = [0u8; MAX_KEY_LEN];
    let key = buf.get_mut(..name.len())?;
    key.copy_from_slice(name.as_bytes());
    match case {
        Case::Lower => key.make_ascii_lowercase(),
        Case::Upper => key.make_ascii_uppercase(),
    }
    let key: &[u8] = key;
    table
        .binary_search_by(|entry| key_of(entry).as_bytes().cmp(key))
        .ok()
        .map(|i| &table[i])
}

/// Looks `name` up in a `(key, lat, lon)` table.
fn find_point(table: &PointTable, name: &str, case: Case) -> Option<LatLon> {
    find(table, |e| e.0, name, case).map(|&(_, lat, lon)| LatLon { lat, lon })
}

/// Coordinates of a public-cloud region by its provider name, e.g.
/// `"us-east-1"` (AWS), `"europe-west1"` (Google Cloud), `"westeurope"`
/// (Azure). Case-insensitive.
pub fn cloud_region(name: &str) -> Option<LatLon> {
    [AWS_REGIONS, GCP_REGIONS, AZURE_REGIONS]
        .into_iter()
        .find_map(|table| find_point(table, name, Case::Lower))
}

/// Centroid (or a representative interior point) of a country by ISO 3166-1
/// alpha-2 code, case-insensitive. Covers all 249 assigned codes plus `XK`
/// (Kosovo).
pub fn country_centroid(iso2: &str) -> Option<LatLon> {
    find_point(COUNTRY_CENTROIDS, iso2, Case::Upper)
}

/// The continent code (`AF` `AN` `AS` `EU` `NA` `OC` `SA`) of a country, by
/// ISO 3166-1 alpha-2 code, case-insensitive.
pub fn country_continent(iso2: &str) -> Option<&'static str> {
    find(COUNTRY_CONTINENTS, |e| e.0, iso2, Case::Upper).map(|&(_, continent)| continent)
}

/// A representative point of a continent by its two-letter code (`AF` `AN`
/// `AS` `EU` `NA` `OC` `SA`), case-insensitive.
pub fn continent_centroid(code: &str) -> Option<LatLon> {
    find_point(CONTINENTS, code, Case::Upper)
}

/// Continent representative points (hand-picked, see the module docs).
static CONTINENTS: &PointTable = &[
    ("AF", 2.0, 17.0),    // Africa: Central African Republic / Congo basin
    ("AN", -80.0, 0.0),   // Antarctica: interior
    ("AS", 35.0, 100.0),  // Asia: Qinghai, China
    ("EU", 50.0, 15.0),   // Europe: Bohemia, Czechia
    ("NA", 46.0, -100.0), // North America: Dakotas, United States
    ("OC", -25.0, 140.0), // Oceania: inland eastern Australia
    ("SA", -15.0, -57.0), // South America: Mato Grosso, Brazil
];

/// AWS regions (lower case), sorted.
static AWS_REGIONS: &PointTable = &[
    ("af-south-1", -33.92, 18.42),      // Africa, Cape Town
    ("ap-east-1", 22.32, 114.17),       // Asia Pacific, Hong Kong
    ("ap-east-2", 25.03, 121.57),       // Asia Pacific, Taipei
    ("ap-northeast-1", 35.68, 139.77),  // Asia Pacific, Tokyo
    ("ap-northeast-2", 37.57, 126.98),  // Asia Pacific, Seoul
    ("ap-northeast-3", 34.69, 135.5),   // Asia Pacific, Osaka
    ("ap-south-1", 19.08, 72.88),       // Asia Pacific, Mumbai
    ("ap-south-2", 17.39, 78.49),       // Asia Pacific, Hyderabad
    ("ap-southeast-1", 1.35, 103.82),   // Asia Pacific, Singapore
    ("ap-southeast-2", -33.87, 151.21), // Asia Pacific, Sydney
    ("ap-southeast-3", -6.21, 106.85),  // Asia Pacific, Jakarta
    ("ap-southeast-4", -37.81, 144.96), // Asia Pacific, Melbourne
    ("ap-southeast-5", 3.15, 101.69),   // Asia Pacific (Malaysia), Kuala Lumpur
    ("ap-southeast-6", -36.85, 174.76), // Asia Pacific (New Zealand), Auckland
    ("ap-southeast-7", 13.76, 100.5),   // Asia Pacific (Thailand), Bangkok
    ("ca-central-1", 45.5, -73.57),     // Canada (Central), Montréal
    ("ca-west-1", 51.05, -114.07),      // Canada West, Calgary
    ("cn-north-1", 39.9, 116.41),       // China, Beijing
    ("cn-northwest-1", 37.5, 105.19),   // China, Ningxia (Zhongwei)
    ("eu-central-1", 50.11, 8.68),      // Europe, Frankfurt
    ("eu-central-2", 47.38, 8.54),      // Europe, Zurich
    ("eu-north-1", 59.33, 18.07),       // Europe, Stockholm
    ("eu-south-1", 45.46, 9.19),        // Europe, Milan
    ("eu-south-2", 41.65, -0.89),       // Europe (Spain), Aragón
    ("eu-west-1", 53.35, -6.26),        // Europe, Dublin
    ("eu-west-2", 51.51, -0.13),        // Europe, London
    ("eu-west-3", 48.86, 2.35),         // Europe, Paris
    ("eusc-de-east-1", 52.4, 13.07),    // AWS European Sovereign Cloud, Brandenburg
    ("il-central-1", 32.09, 34.78),     // Israel, Tel Aviv
    ("me-central-1", 25.2, 55.27),      // Middle East (UAE), assumed Dubai
    ("me-south-1", 26.23, 50.59),       // Middle East, Bahrain
    ("mx-central-1", 20.59, -100.39),   // Mexico (Central), Querétaro
    ("sa-east-1", -23.55, -46.63),      // South America, São Paulo
    ("us-east-1", 38.94, -77.45),       // US East (N. Virginia), Ashburn area
    ("us-east-2", 39.96, -83.0),        // US East (Ohio), Columbus area
    ("us-gov-east-1", 39.96, -83.0),    // AWS GovCloud (US-East), Ohio
    ("us-gov-west-1", 45.84, -119.7),   // AWS GovCloud (US-West), assumed Oregon (undisclosed)
    ("us-west-1", 37.35, -121.96),      // US West (N. California), San Jose area
    ("us-west-2", 45.84, -119.7),       // US West (Oregon), Boardman area
];

/// Google Cloud regions (lower case), sorted.
static GCP_REGIONS: &PointTable = &[
    ("africa-south1", -26.2, 28.05),            // Johannesburg
    ("asia-east1", 24.05, 120.52),              // Changhua County, Taiwan
    ("asia-east2", 22.32, 114.17),              // Hong Kong
    ("asia-northeast1", 35.68, 139.77),         // Tokyo
    ("asia-northeast2", 34.69, 135.5),          // Osaka
    ("asia-northeast3", 37.57, 126.98),         // Seoul
    ("asia-south1", 19.08, 72.88),              // Mumbai
    ("asia-south2", 28.7, 77.1),                // Delhi
    ("asia-southeast1", 1.34, 103.71),          // Jurong West, Singapore
    ("asia-southeast2", -6.21, 106.85),         // Jakarta
    ("australia-southeast1", -33.87, 151.21),   // Sydney
    ("australia-southeast2", -37.81, 144.96),   // Melbourne
    ("europe-central2", 52.23, 21.01),          // Warsaw
    ("europe-north1", 60.57, 27.19),            // Hamina, Finland
    ("europe-north2", 59.33, 18.07),            // Stockholm
    ("europe-southwest1", 40.42, -3.7),         // Madrid
    ("europe-west1", 50.47, 3.81),              // St. Ghislain, Belgium
    ("europe-west10", 52.52, 13.4),             // Berlin
    ("europe-west12", 45.07, 7.69),             // Turin
    ("europe-west2", 51.51, -0.13),             // London
    ("europe-west3", 50.11, 8.68),              // Frankfurt
    ("europe-west4", 53.44, 6.83),              // Eemshaven, Netherlands
    ("europe-west6", 47.38, 8.54),              // Zurich
    ("europe-west8", 45.46, 9.19),              // Milan
    ("europe-west9", 48.86, 2.35),              // Paris
    ("me-central1", 25.29, 51.53),              // Doha
    ("me-central2", 26.43, 50.1),               // Dammam, Saudi Arabia
    ("me-west1", 32.09, 34.78),                 // Tel Aviv
    ("northamerica-northeast1", 45.5, -73.57),  // Montréal
    ("northamerica-northeast2", 43.65, -79.38), // Toronto
    ("northamerica-south1", 20.59, -100.39),    // Querétaro
    ("southamerica-east1", -23.53, -46.79),     // Osasco (São Paulo)
    ("southamerica-west1", -33.45, -70.67),     // Santiago
    ("us-central1", 41.26, -95.86),             // Council Bluffs, Iowa
    ("us-east1", 33.2, -80.01),                 // Moncks Corner, South Carolina
    ("us-east4", 39.04, -77.49),                // Ashburn, Virginia
    ("us-east5", 39.96, -83.0),                 // Columbus, Ohio
    ("us-south1", 32.78, -96.8),                // Dallas, Texas
    ("us-west1", 45.6, -121.18),                // The Dalles, Oregon
    ("us-west2", 34.05, -118.24),               // Los Angeles, California
    ("us-west3", 40.76, -111.89),               // Salt Lake City, Utah
    ("us-west4", 36.17, -115.14),               // Las Vegas, Nevada
];

/// Azure regions (lower case), sorted. Values are Azure's published
/// region coordinates unless marked approximate.
static AZURE_REGIONS: &PointTable = &[
    ("australiacentral", -35.3075, 149.1244),   // Canberra
    ("australiacentral2", -35.3075, 149.1244),  // Canberra
    ("australiaeast", -33.86, 151.2094),        // New South Wales
    ("australiasoutheast", -37.8136, 144.9631), // Victoria
    ("austriaeast", 48.2082, 16.3738),          // Vienna (approximate: city coordinates)
    ("belgiumcentral", 50.8503, 4.3517),        // Brussels (approximate: city coordinates)
    ("brazilsouth", -23.55, -46.633),           // São Paulo State
    ("brazilsoutheast", -22.9028, -43.2075),    // Rio de Janeiro
    ("canadacentral", 43.653, -79.383),         // Toronto
    ("canadaeast", 46.817, -71.217),            // Quebec City
    ("centralindia", 18.5822, 73.9197),         // Pune
    ("centralus", 41.5908, -93.6208),           // Iowa
    ("centraluseuap", 41.5908, -93.6208),       // Iowa (canary)
    ("chilecentral", -33.4489, -70.6693),       // Santiago (approximate: city coordinates)
    ("chinaeast", 31.2304, 121.4737), // Shanghai (21Vianet) (approximate: city coordinates)
    ("chinaeast2", 31.2304, 121.4737), // Shanghai (21Vianet) (approximate: city coordinates)
    ("chinaeast3", 31.2304, 121.4737), // Shanghai (21Vianet) (approximate: city coordinates)
    ("chinanorth", 39.9042, 116.4074), // Beijing (21Vianet) (approximate: city coordinates)
    ("chinanorth2", 39.9042, 116.4074), // Beijing (21Vianet) (approximate: city coordinates)
    ("chinanorth3", 39.9042, 116.4074), // Hebei / Beijing area (21Vianet) (approximate: city coordinates)
    ("denmarkeast", 55.6761, 12.5683),  // Copenhagen (approximate: city coordinates)
    ("eastasia", 22.267, 114.188),      // Hong Kong
    ("eastus", 37.3719, -79.8164),      // Virginia
    ("eastus2", 36.6681, -78.3889),     // Virginia
    ("eastus2euap", 36.6681, -78.3889), // Virginia (canary)
    ("francecentral", 46.3772, 2.373),  // Paris
    ("francesouth", 43.8345, 2.1972),   // Marseille
    ("germanynorth", 53.0736, 8.8064),  // Germany North
    ("germanywestcentral", 50.1109, 8.6821), // Frankfurt
    ("indonesiacentral", -6.2088, 106.8456), // Jakarta (approximate: city coordinates)
    ("israelcentral", 32.0702, 34.7171), // Israel
    ("italynorth", 45.4689, 9.1811),    // Milan
    ("japaneast", 35.68, 139.77),       // Tokyo, Saitama
    ("japanwest", 34.6939, 135.5022),   // Osaka
    ("jioindiacentral", 21.1466, 79.0889), // Nagpur
    ("jioindiawest", 22.4707, 70.0577), // Jamnagar
    ("koreacentral", 37.5665, 126.978), // Seoul
    ("koreasouth", 35.1796, 129.0756),  // Busan
    ("malaysiawest", 3.139, 101.6869),  // Kuala Lumpur (approximate: city coordinates)
    ("mexicocentral", 20.5888, -100.3899), // Querétaro
    ("newzealandnorth", -36.8485, 174.7633), // Auckland (approximate: city coordinates)
    ("northcentralus", 41.8819, -87.6278), // Illinois
    ("northeurope", 53.3478, -6.2597),  // Ireland
    ("norwayeast", 59.9139, 10.7522),   // Norway (Oslo)
    ("norwaywest", 58.97, 5.7331),      // Norway (Stavanger)
    ("polandcentral", 52.2333, 21.0167), // Warsaw
    ("qatarcentral", 25.5515, 51.4393), // Doha
    ("southafricanorth", -25.7313, 28.2184), // Johannesburg
    ("southafricawest", -34.0757, 18.8433), // Cape Town
    ("southcentralus", 29.4167, -98.5), // Texas
    ("southeastasia", 1.283, 103.833),  // Singapore
    ("southindia", 12.9822, 80.1636),   // Chennai
    ("spaincentral", 40.4168, -3.7038), // Madrid (approximate: city coordinates)
    ("swedencentral", 60.6749, 17.1413), // Gävle
    ("swedensouth", 55.6059, 13.0007),  // Malmö (approximate: city coordinates)
    ("switzerlandnorth", 47.4515, 8.5646), // Zurich
    ("switzerlandwest", 46.2044, 6.1432), // Geneva
    ("uaecentral", 24.4667, 54.3667),   // Abu Dhabi
    ("uaenorth", 25.2667, 55.3167),     // Dubai
    ("uksouth", 50.941, -0.799),        // London
    ("ukwest", 53.427, -3.084),         // Cardiff
    ("usdodcentral", 41.6005, -93.6091), // US DoD Central, Iowa (approximate: city coordinates)
    ("usdodeast", 36.6676, -78.3875),   // US DoD East, Virginia (approximate: city coordinates)
    ("usgovarizona", 33.4484, -112.074), // US Gov Arizona (approximate: city coordinates)
    ("usgovtexas", 29.4241, -98.4936),  // US Gov Texas (approximate: city coordinates)
    ("usgovvirginia", 37.3719, -79.8164), // US Gov Virginia (approximate: city coordinates)
    ("westcentralus", 40.89, -110.234), // Wyoming
    ("westeurope", 52.3667, 4.9),       // Netherlands
    ("westindia", 19.088, 72.868),      // Mumbai
    ("westus", 37.783, -122.417),       // California
    ("westus2", 47.233, -119.852),      // Washington
    ("westus3", 33.4484, -112.074),     // Phoenix
];

/// Country centroids by ISO 3166-1 alpha-2 code (upper case), sorted.
static COUNTRY_CENTROIDS: &PointTable = &[
    ("AD", 42.5462, 1.6016),     // Andorra
    ("AE", 23.4241, 53.8478),    // United Arab Emirates
    ("AF", 33.9391, 67.71),      // Afghanistan
    ("AG", 17.0608, -61.7964),   // Antigua and Barbuda
    ("AI", 18.2206, -63.0686),   // Anguilla
    ("AL", 41.1533, 20.1683),    // Albania
    ("AM", 40.0691, 45.0382),    // Armenia
    ("AO", -11.2027, 17.8739),   // Angola
    ("AQ", -75.251, -0.0714),    // Antarctica
    ("AR", -38.4161, -63.6167),  // Argentina
    ("AS", -14.271, -170.1322),  // American Samoa
    ("AT", 47.5162, 14.5501),    // Austria
    ("AU", -25.2744, 133.7751),  // Australia
    ("AW", 12.5211, -69.9683),   // Aruba
    ("AX", 60.18, 19.92),        // Åland Islands (added)
    ("AZ", 40.1431, 47.5769),    // Azerbaijan
    ("BA", 43.9159, 17.6791),    // Bosnia and Herzegovina
    ("BB", 13.1939, -59.5432),   // Barbados
    ("BD", 23.685, 90.3563),     // Bangladesh
    ("BE", 50.5039, 4.4699),     // Belgium
    ("BF", 12.2383, -1.5616),    // Burkina Faso
    ("BG", 42.7339, 25.4858),    // Bulgaria
    ("BH", 25.9304, 50.6378),    // Bahrain
    ("BI", -3.3731, 29.9189),    // Burundi
    ("BJ", 9.3077, 2.3158),      // Benin
    ("BL", 17.9, -62.83),        // Saint Barthélemy (added)
    ("BM", 32.3214, -64.7574),   // Bermuda
    ("BN", 4.5353, 114.7277),    // Brunei
    ("BO", -16.2902, -63.5887),  // Bolivia
    ("BQ", 12.18, -68.24),       // Bonaire, Sint Eustatius and Saba (Bonaire) (added)
    ("BR", -14.235, -51.9253),   // Brazil
    ("BS", 25.0343, -77.3963),   // Bahamas
    ("BT", 27.5142, 90.4336),    // Bhutan
    ("BV", -54.4232, 3.4132),    // Bouvet Island
    ("BW", -22.3285, 24.6849),   // Botswana
    ("BY", 53.7098, 27.9534),    // Belarus
    ("BZ", 17.1899, -88.4976),   // Belize
    ("CA", 56.1304, -106.3468),  // Canada
    ("CC", -12.1642, 96.871),    // Cocos [Keeling] Islands
    ("CD", -4.0383, 21.7587),    // Congo [DRC]
    ("CF", 6.6111, 20.9394),     // Central African Republic
    ("CG", -0.228, 15.8277),     // Congo [Republic]
    ("CH", 46.8182, 8.2275),     // Switzerland
    ("CI", 7.54, -5.5471),       // Côte d'Ivoire
    ("CK", -21.2367, -159.7777), // Cook Islands
    ("CL", -35.6751, -71.543),   // Chile
    ("CM", 7.3697, 12.3547),     // Cameroon
    ("CN", 35.8617, 104.1954),   // China
    ("CO", 4.5709, -74.2973),    // Colombia
    ("CR", 9.7489, -83.7534),    // Costa Rica
    ("CU", 21.5218, -77.7812),   // Cuba
    ("CV", 16.0021, -24.0132),   // Cape Verde
    ("CW", 12.17, -68.98),       // Curaçao (added)
    ("CX", -10.4475, 105.6904),  // Christmas Island
    ("CY", 35.1264, 33.4299),    // Cyprus
    ("CZ", 49.8175, 15.473),     // Czech Republic
    ("DE", 51.1657, 10.4515),    // Germany
    ("DJ", 11.8251, 42.5903),    // Djibouti
    ("DK", 56.2639, 9.5018),     // Denmark
    ("DM", 15.415, -61.371),     // Dominica
    ("DO", 18.7357, -70.1627),   // Dominican Republic
    ("DZ", 28.0339, 1.6596),     // Algeria
    ("EC", -1.8312, -78.1834),   // Ecuador
    ("EE", 58.5953, 25.0136),    // Estonia
    ("EG", 26.8206, 30.8025),    // Egypt
    ("EH", 24.2155, -12.8858),   // Western Sahara
    ("ER", 15.1794, 39.7823),    // Eritrea
    ("ES", 40.4637, -3.7492),    // Spain
    ("ET", 9.145, 40.4897),      // Ethiopia
    ("FI", 61.9241, 25.7482),    // Finland
    ("FJ", -16.5782, 179.4144),  // Fiji
    ("FK", -51.7963, -59.5236),  // Falkland Islands [Islas Malvinas]
    ("FM", 7.4256, 150.5508),    // Micronesia
    ("FO", 61.8926, -6.9118),    // Faroe Islands
    ("FR", 46.2276, 2.2137),     // France
    ("GA", -0.8037, 11.6094),    // Gabon
    ("GB", 55.3781, -3.436),     // United Kingdom
    ("GD", 12.2628, -61.6042),   // Grenada
    ("GE", 42.3154, 43.3569),    // Georgia
    ("GF", 3.9339, -53.1258),    // French Guiana
    ("GG", 49.4657, -2.5853),    // Guernsey
    ("GH", 7.9465, -1.0232),     // Ghana
    ("GI", 36.1377, -5.3454),    // Gibraltar
    ("GL", 71.7069, -42.6043),   // Greenland
    ("GM", 13.4432, -15.3101),   // Gambia
    ("GN", 9.9456, -9.6966),     // Guinea
    ("GP", 16.996, -62.0676),    // Guadeloupe
    ("GQ", 1.6508, 10.2679),     // Equatorial Guinea
    ("GR", 39.0742, 21.8243),    // Greece
    ("GS", -54.4296, -36.5879),  // South Georgia and the South Sandwich Islands
    ("GT", 15.7835, -90.2308),   // Guatemala
    ("GU", 13.4443, 144.7937),   // Guam
    ("GW", 11.8037, -15.1804),   // Guinea-Bissau
    ("GY", 4.8604, -58.9302),    // Guyana
    ("HK", 22.3964, 114.1095),   // Hong Kong
    ("HM", -53.0818, 73.5042),   // Heard Island and McDonald Islands
    ("HN", 15.2, -86.2419),      // Honduras
    ("HR", 45.1, 15.2),          // Croatia
    ("HT", 18.9712, -72.2852),   // Haiti
    ("HU", 47.1625, 19.5033),    // Hungary
    ("ID", -0.7893, 113.9213),   // Indonesia
    ("IE", 53.4129, -8.2439),    // Ireland
    ("IL", 31.0461, 34.8516),    // Israel
    ("IM", 54.2361, -4.5481),    // Isle of Man
    ("IN", 20.5937, 78.9629),    // India
    ("IO", -6.3432, 71.8765),    // British Indian Ocean Territory
    ("IQ", 33.2232, 43.6793),    // Iraq
    ("IR", 32.4279, 53.688),     // Iran
    ("IS", 64.9631, -19.0208),   // Iceland
    ("IT", 41.8719, 12.5674),    // Italy
    ("JE", 49.2144, -2.1313),    // Jersey
    ("JM", 18.1096, -77.2975),   // Jamaica
    ("JO", 30.5852, 36.2384),    // Jordan
    ("JP", 36.2048, 138.2529),   // Japan
    ("KE", -0.0236, 37.9062),    // Kenya
    ("KG", 41.2044, 74.7661),    // Kyrgyzstan
    ("KH", 12.5657, 104.991),    // Cambodia
    ("KI", -3.3704, -168.734),   // Kiribati
    ("KM", -11.875, 43.8722),    // Comoros
    ("KN", 17.3578, -62.783),    // Saint Kitts and Nevis
    ("KP", 40.3399, 127.5101),   // North Korea
    ("KR", 35.9078, 127.7669),   // South Korea
    ("KW", 29.3117, 47.4818),    // Kuwait
    ("KY", 19.5135, -80.567),    // Cayman Islands
    ("KZ", 48.0196, 66.9237),    // Kazakhstan
    ("LA", 19.8563, 102.4955),   // Laos
    ("LB", 33.8547, 35.8623),    // Lebanon
    ("LC", 13.9094, -60.9789),   // Saint Lucia
    ("LI", 47.166, 9.5554),      // Liechtenstein
    ("LK", 7.8731, 80.7718),     // Sri Lanka
    ("LR", 6.4281, -9.4295),     // Liberia
    ("LS", -29.61, 28.2336),     // Lesotho
    ("LT", 55.1694, 23.8813),    // Lithuania
    ("LU", 49.8153, 6.1296),     // Luxembourg
    ("LV", 56.8796, 24.6032),    // Latvia
    ("LY", 26.3351, 17.2283),    // Libya
    ("MA", 31.7917, -7.0926),    // Morocco
    ("MC", 43.7503, 7.4128),     // Monaco
    ("MD", 47.4116, 28.3699),    // Moldova
    ("ME", 42.7087, 19.3744),    // Montenegro
    ("MF", 18.08, -63.05),       // Saint Martin (French part) (added)
    ("MG", -18.7669, 46.8691),   // Madagascar
    ("MH", 7.1315, 171.1845),    // Marshall Islands
    ("MK", 41.6086, 21.7453),    // Macedonia [FYROM]
    ("ML", 17.5707, -3.9962),    // Mali
    ("MM", 21.914, 95.9562),     // Myanmar [Burma]
    ("MN", 46.8625, 103.8467),   // Mongolia
    ("MO", 22.1987, 113.5439),   // Macau
    ("MP", 17.3308, 145.3847),   // Northern Mariana Islands
    ("MQ", 14.6415, -61.0242),   // Martinique
    ("MR", 21.0079, -10.9408),   // Mauritania
    ("MS", 16.7425, -62.1874),   // Montserrat
    ("MT", 35.9375, 14.3754),    // Malta
    ("MU", -20.3484, 57.5522),   // Mauritius
    ("MV", 3.2028, 73.2207),     // Maldives
    ("MW", -13.2543, 34.3015),   // Malawi
    ("MX", 23.6345, -102.5528),  // Mexico
    ("MY", 4.2105, 101.9758),    // Malaysia
    ("MZ", -18.6657, 35.5296),   // Mozambique
    ("NA", -22.9576, 18.4904),   // Namibia
    ("NC", -20.9043, 165.618),   // New Caledonia
    ("NE", 17.6078, 8.0817),     // Niger
    ("NF", -29.0408, 167.9547),  // Norfolk Island
    ("NG", 9.082, 8.6753),       // Nigeria
    ("NI", 12.8654, -85.2072),   // Nicaragua
    ("NL", 52.1326, 5.2913),     // Netherlands
    ("NO", 60.472, 8.4689),      // Norway
    ("NP", 28.3949, 84.124),     // Nepal
    ("NR", -0.5228, 166.9315),   // Nauru
    ("NU", -19.0544, -169.8672), // Niue
    ("NZ", -40.9006, 174.886),   // New Zealand
    ("OM", 21.5126, 55.9233),    // Oman
    ("PA", 8.538, -80.7821),     // Panama
    ("PE", -9.19, -75.0152),     // Peru
    ("PF", -17.6797, -149.4068), // French Polynesia
    ("PG", -6.315, 143.9555),    // Papua New Guinea
    ("PH", 12.8797, 121.774),    // Philippines
    ("PK", 30.3753, 69.3451),    // Pakistan
    ("PL", 51.9194, 19.1451),    // Poland
    ("PM", 46.9419, -56.2711),   // Saint Pierre and Miquelon
    ("PN", -24.7036, -127.4393), // Pitcairn Islands
    ("PR", 18.2208, -66.5901),   // Puerto Rico
    ("PS", 31.9522, 35.2332),    // Palestinian Territories
    ("PT", 39.3999, -8.2245),    // Portugal
    ("PW", 7.515, 134.5825),     // Palau
    ("PY", -23.4425, -58.4438),  // Paraguay
    ("QA", 25.3548, 51.1839),    // Qatar
    ("RE", -21.1151, 55.5364),   // Réunion
    ("RO", 45.9432, 24.9668),    // Romania
    ("RS", 44.0165, 21.0059),    // Serbia
    ("RU", 61.524, 105.3188),    // Russia
    ("RW", -1.9403, 29.8739),    // Rwanda
    ("SA", 23.8859, 45.0792),    // Saudi Arabia
    ("SB", -9.6457, 160.1562),   // Solomon Islands
    ("SC", -4.6796, 55.492),     // Seychelles
    ("SD", 12.8628, 30.2176),    // Sudan
    ("SE", 60.1282, 18.6435),    // Sweden
    ("SG", 1.3521, 103.8198),    // Singapore
    ("SH", -15.965, -5.7089),    // Saint Helena (replaced: the source point lies in open ocean)
    ("SI", 46.1512, 14.9955),    // Slovenia
    ("SJ", 77.5536, 23.6703),    // Svalbard and Jan Mayen
    ("SK", 48.669, 19.699),      // Slovakia
    ("SL", 8.4606, -11.7799),    // Sierra Leone
    ("SM", 43.9424, 12.4578),    // San Marino
    ("SN", 14.4974, -14.4524),   // Senegal
    ("SO", 5.1521, 46.1996),     // Somalia
    ("SR", 3.9193, -56.0278),    // Suriname
    ("SS", 7.87, 29.87),         // South Sudan (added)
    ("ST", 0.1864, 6.6131),      // São Tomé and Príncipe
    ("SV", 13.7942, -88.8965),   // El Salvador
    ("SX", 18.04, -63.07),       // Sint Maarten (Dutch part) (added)
    ("SY", 34.8021, 38.9968),    // Syria
    ("SZ", -26.5225, 31.4659),   // Swaziland
    ("TC", 21.694, -71.7979),    // Turks and Caicos Islands
    ("TD", 15.4542, 18.7322),    // Chad
    ("TF", -49.2804, 69.3486),   // French Southern Territories
    ("TG", 8.6195, 0.8248),      // Togo
    ("TH", 15.87, 100.9925),     // Thailand
    ("TJ", 38.861, 71.2761),     // Tajikistan
    ("TK", -8.9674, -171.8559),  // Tokelau
    ("TL", -8.8742, 125.7275),   // Timor-Leste
    ("TM", 38.9697, 59.5563),    // Turkmenistan
    ("TN", 33.8869, 9.5375),     // Tunisia
    ("TO", -21.179, -175.1982),  // Tonga
    ("TR", 38.9637, 35.2433),    // Turkey
    ("TT", 10.6918, -61.2225),   // Trinidad and Tobago
    ("TV", -7.1095, 177.6493),   // Tuvalu
    ("TW", 23.6978, 120.9605),   // Taiwan
    ("TZ", -6.369, 34.8888),     // Tanzania
    ("UA", 48.3794, 31.1656),    // Ukraine
    ("UG", 1.3733, 32.2903),     // Uganda
    ("UM", 19.28, 166.65),       // U.S. Minor Outlying Islands (Wake Island) (added)
    ("US", 37.0902, -95.7129),   // United States
    ("UY", -32.5228, -55.7658),  // Uruguay
    ("UZ", 41.3775, 64.5853),    // Uzbekistan
    ("VA", 41.9029, 12.4534),    // Vatican City
    ("VC", 12.9843, -61.2872),   // Saint Vincent and the Grenadines
    ("VE", 6.4238, -66.5897),    // Venezuela
    ("VG", 18.4207, -64.64),     // British Virgin Islands
    ("VI", 18.3358, -64.8963),   // U.S. Virgin Islands
    ("VN", 14.0583, 108.2772),   // Vietnam
    ("VU", -15.3767, 166.9592),  // Vanuatu
    ("WF", -13.7688, -177.1561), // Wallis and Futuna
    ("WS", -13.759, -172.1046),  // Samoa
    ("XK", 42.6026, 20.903),     // Kosovo
    ("YE", 15.5527, 48.5164),    // Yemen
    ("YT", -12.8275, 45.1662),   // Mayotte
    ("ZA", -30.5595, 22.9375),   // South Africa
    ("ZM", -13.1339, 27.8493),   // Zambia
    ("ZW", -19.0154, 29.1549),   // Zimbabwe
];

/// Continent of each country (upper case), sorted; same keys as
/// [`COUNTRY_CENTROIDS`].
static COUNTRY_CONTINENTS: &[(&str, &str)] = &[
    ("AD", "EU"),
    ("AE", "AS"),
    ("AF", "AS"),
    ("AG", "NA"),
    ("AI", "NA"),
    ("AL", "EU"),
    ("AM", "AS"),
    ("AO", "AF"),
    ("AQ", "AN"),
    ("AR", "SA"),
    ("AS", "OC"),
    ("AT", "EU"),
    ("AU", "OC"),
    ("AW", "NA"),
    ("AX", "EU"),
    ("AZ", "AS"),
    ("BA", "EU"),
    ("BB", "NA"),
    ("BD", "AS"),
    ("BE", "EU"),
    ("BF", "AF"),
    ("BG", "EU"),
    ("BH", "AS"),
    ("BI", "AF"),
    ("BJ", "AF"),
    ("BL", "NA"),
    ("BM", "NA"),
    ("BN", "AS"),
    ("BO", "SA"),
    ("BQ", "NA"),
    ("BR", "SA"),
    ("BS", "NA"),
    ("BT", "AS"),
    ("BV", "AN"),
    ("BW", "AF"),
    ("BY", "EU"),
    ("BZ", "NA"),
    ("CA", "NA"),
    ("CC", "AS"),
    ("CD", "AF"),
    ("CF", "AF"),
    ("CG", "AF"),
    ("CH", "EU"),
    ("CI", "AF"),
    ("CK", "OC"),
    ("CL", "SA"),
    ("CM", "AF"),
    ("CN", "AS"),
    ("CO", "SA"),
    ("CR", "NA"),
    ("CU", "NA"),
    ("CV", "AF"),
    ("CW", "NA"),
    ("CX", "OC"),
    ("CY", "EU"),
    ("CZ", "EU"),
    ("DE", "EU"),
    ("DJ", "AF"),
    ("DK", "EU"),
    ("DM", "NA"),
    ("DO", "NA"),
    ("DZ", "AF"),
    ("EC", "SA"),
    ("EE", "EU"),
    ("EG", "AF"),
    ("EH", "AF"),
    ("ER", "AF"),
    ("ES", "EU"),
    ("ET", "AF"),
    ("FI", "EU"),
    ("FJ", "OC"),
    ("FK", "SA"),
    ("FM", "OC"),
    ("FO", "EU"),
    ("FR", "EU"),
    ("GA", "AF"),
    ("GB", "EU"),
    ("GD", "NA"),
    ("GE", "AS"),
    ("GF", "SA"),
    ("GG", "EU"),
    ("GH", "AF"),
    ("GI", "EU"),
    ("GL", "NA"),
    ("GM", "AF"),
    ("GN", "AF"),
    ("GP", "NA"),
    ("GQ", "AF"),
    ("GR", "EU"),
    ("GS", "AN"),
    ("GT", "NA"),
    ("GU", "OC"),
    ("GW", "AF"),
    ("GY", "SA"),
    ("HK", "AS"),
    ("HM", "AN"),
    ("HN", "NA"),
    ("HR", "EU"),
    ("HT", "NA"),
    ("HU", "EU"),
    ("ID", "AS"),
    ("IE", "EU"),
    ("IL", "AS"),
    ("IM", "EU"),
    ("IN", "AS"),
    ("IO", "AS"),
    ("IQ", "AS"),
    ("IR", "AS"),
    ("IS", "EU"),
    ("IT", "EU"),
    ("JE", "EU"),
    ("JM", "NA"),
    ("JO", "AS"),
    ("JP", "AS"),
    ("KE", "AF"),
    ("KG", "AS"),
    ("KH", "AS"),
    ("KI", "OC"),
    ("KM", "AF"),
    ("KN", "NA"),
    ("KP", "AS"),
    ("KR", "AS"),
    ("KW", "AS"),
    ("KY", "NA"),
    ("KZ", "AS"),
    ("LA", "AS"),
    ("LB", "AS"),
    ("LC", "NA"),
    ("LI", "EU"),
    ("LK", "AS"),
    ("LR", "AF"),
    ("LS", "AF"),
    ("LT", "EU"),
    ("LU", "EU"),
    ("LV", "EU"),
    ("LY", "AF"),
    ("MA", "AF"),
    ("MC", "EU"),
    ("MD", "EU"),
    ("ME", "EU"),
    ("MF", "NA"),
    ("MG", "AF"),
    ("MH", "OC"),
    ("MK", "EU"),
    ("ML", "AF"),
    ("MM", "AS"),
    ("MN", "AS"),
    ("MO", "AS"),
    ("MP", "OC"),
    ("MQ", "NA"),
    ("MR", "AF"),
    ("MS", "NA"),
    ("MT", "EU"),
    ("MU", "AF"),
    ("MV", "AS"),
    ("MW", "AF"),
    ("MX", "NA"),
    ("MY", "AS"),
    ("MZ", "AF"),
    ("NA", "AF"),
    ("NC", "OC"),
    ("NE", "AF"),
    ("NF", "OC"),
    ("NG", "AF"),
    ("NI", "NA"),
    ("NL", "EU"),
    ("NO", "EU"),
    ("NP", "AS"),
    ("NR", "OC"),
    ("NU", "OC"),
    ("NZ", "OC"),
    ("OM", "AS"),
    ("PA", "NA"),
    ("PE", "SA"),
    ("PF", "OC"),
    ("PG", "OC"),
    ("PH", "AS"),
    ("PK", "AS"),
    ("PL", "EU"),
    ("PM", "NA"),
    ("PN", "OC"),
    ("PR", "NA"),
    ("PS", "AS"),
    ("PT", "EU"),
    ("PW", "OC"),
    ("PY", "SA"),
    ("QA", "AS"),
    ("RE", "AF"),
    ("RO", "EU"),
    ("RS", "EU"),
    ("RU", "EU"),
    ("RW", "AF"),
    ("SA", "AS"),
    ("SB", "OC"),
    ("SC", "AF"),
    ("SD", "AF"),
    ("SE", "EU"),
    ("SG", "AS"),
    ("SH", "AF"),
    ("SI", "EU"),
    ("SJ", "EU"),
    ("SK", "EU"),
    ("SL", "AF"),
    ("SM", "EU"),
    ("SN", "AF"),
    ("SO", "AF"),
    ("SR", "SA"),
    ("SS", "AF"),
    ("ST", "AF"),
    ("SV", "NA"),
    ("SX", "NA"),
    ("SY", "AS"),
    ("SZ", "AF"),
    ("TC", "NA"),
    ("TD", "AF"),
    ("TF", "AN"),
    ("TG", "AF"),
    ("TH", "AS"),
    ("TJ", "AS"),
    ("TK", "OC"),
    ("TL", "OC"),
    ("TM", "AS"),
    ("TN", "AF"),
    ("TO", "OC"),
    ("TR", "AS"),
    ("TT", "NA"),
    ("TV", "OC"),
    ("TW", "AS"),
    ("TZ", "AF"),
    ("UA", "EU"),
    ("UG", "AF"),
    ("UM", "OC"),
    ("US", "NA"),
    ("UY", "SA"),
    ("UZ", "AS"),
    ("VA", "EU"),
    ("VC", "NA"),
    ("VE", "SA"),
    ("VG", "NA"),
    ("VI", "NA"),
    ("VN", "AS"),
    ("VU", "OC"),
    ("WF", "OC"),
    ("WS", "OC"),
    ("XK", "EU"),
    ("YE", "AS"),
    ("YT", "AF"),
    ("ZA", "AF"),
    ("ZM", "AF"),
    ("ZW", "AF"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    const CONTINENT_CODES: [&str; 7] = ["AF", "AN", "AS", "EU", "NA", "OC", "SA"];

    /// Great-circle distance in kilometres.
    fn km(a: LatLon, b: LatLon) -> f64 {
        let (la1, lo1) = (a.lat.to_radians(), a.lon.to_radians());
        let (la2, lo2) = (b.lat.to_radians(), b.lon.to_radians());
        let h = ((la2 - la1) / 2.0).sin().powi(2)
            + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
        2.0 * 6371.0 * h.sqrt().asin()
    }

    fn near(p: Option<LatLon>, lat: f64, lon: f64, max_km: f64) -> bool {
        p.is_some_and(|p| km(p, LatLon { lat, lon }) <= max_km)
    }

    fn in_box(p: Option<LatLon>, lat: (f64, f64), lon: (f64, f64)) -> bool {
        p.is_some_and(|p| (lat.0..=lat.1).contains(&p.lat) && (lon.0..=lon.1).contains(&p.lon))
    }

    fn point_tables() -> [(&'static str, &'static PointTable); 5] {
        [
            ("AWS_REGIONS", AWS_REGIONS),
            ("GCP_REGIONS", GCP_REGIONS),
            ("AZURE_REGIONS", AZURE_REGIONS),
            ("COUNTRY_CENTROIDS", COUNTRY_CENTROIDS),
            ("CONTINENTS", CONTINENTS),
        ]
    }

    fn assert_sorted_unique<'a>(name: &str, keys: impl Iterator<Item = &'a str>) {
        let keys: Vec<&str> = keys.collect();
        for w in keys.windows(2) {
            assert!(
                w[0] < w[1],
                "{name}: {:?} must sort before {:?}",
                w[0],
                w[1]
            );
        }
    }

    #[test]
    fn tables_sorted_without_duplicates() {
        for (name, table) in point_tables() {
            assert_sorted_unique(name, table.iter().map(|e| e.0));
        }
        assert_sorted_unique("COUNTRY_CONTINENTS", COUNTRY_CONTINENTS.iter().map(|e| e.0));
    }

    #[test]
    fn no_region_name_shared_between_providers() {
        let all: Vec<&str> = [AWS_REGIONS, GCP_REGIONS, AZURE_REGIONS]
            .iter()
            .flat_map(|t| t.iter().map(|e| e.0))
            .collect();
        let unique: BTreeSet<&str> = all.iter().copied().collect();
        assert_eq!(unique.len(), all.len(), "a region name is listed twice");
    }

    #[test]
    fn keys_are_in_stored_case_and_fit_the_buffer() {
        for table in [AWS_REGIONS, GCP_REGIONS, AZURE_REGIONS] {
            for &(k, _, _) in table {
                assert!(!k.is_empty() && k.len() <= MAX_KEY_LEN, "{k}");
                assert!(
                    k.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                    "{k}"
                );
                assert!(cloud_region(k).is_some(), "{k}");
            }
        }
        for &(k, _, _) in COUNTRY_CENTROIDS.iter().chain(CONTINENTS) {
            assert!(
                k.len() == 2 && k.bytes().all(|b| b.is_ascii_uppercase()),
                "{k}"
            );
        }
    }

    #[test]
    fn coordinates_in_range() {
        for (name, table) in point_tables() {
            for &(k, lat, lon) in table {
                assert!((-90.0..=90.0).contains(&lat), "{name} {k}: lat {lat}");
                assert!((-180.0..=180.0).contains(&lon), "{name} {k}: lon {lon}");
            }
        }
    }

    #[test]
    fn every_country_has_centroid_and_continent() {
        assert_eq!(COUNTRY_CENTROIDS.len(), 250, "249 ISO 3166-1 codes plus XK");
        assert_eq!(COUNTRY_CENTROIDS.len(), COUNTRY_CONTINENTS.len());
        for (&(a, _, _), &(b, continent)) in COUNTRY_CENTROIDS.iter().zip(COUNTRY_CONTINENTS) {
            assert_eq!(a, b, "country tables list different codes");
            assert!(CONTINENT_CODES.contains(&continent), "{a}: {continent}");
            assert!(country_centroid(a).is_some(), "{a}");
            assert_eq!(country_continent(a), Some(continent));
        }
    }

    #[test]
    fn every_continent_has_a_point() {
        assert_eq!(CONTINENTS.len(), CONTINENT_CODES.len());
        for code in CONTINENT_CODES {
            assert!(continent_centroid(code).is_some(), "{code}");
        }
    }

    #[test]
    fn known_cloud_regions() {
        // N. Virginia, Amsterdam, Tokyo, Dublin, Iowa, Sydney.
        assert!(near(cloud_region("us-east-1"), 38.9, -77.4, 100.0));
        assert!(near(cloud_region("westeurope"), 52.37, 4.9, 50.0));
        assert!(near(cloud_region("asia-northeast1"), 35.68, 139.69, 50.0));
        assert!(near(cloud_region("eu-west-1"), 53.35, -6.26, 50.0));
        assert!(near(cloud_region("us-central1"), 41.26, -95.86, 50.0));
        assert!(near(cloud_region("australiaeast"), -33.87, 151.21, 50.0));
        assert!(near(cloud_region("ap-southeast-2"), -33.87, 151.21, 50.0));
        assert!(near(cloud_region("europe-west10"), 52.52, 13.4, 50.0));
    }

    #[test]
    fn known_countries() {
        assert!(in_box(country_centroid("JP"), (30.0, 46.0), (128.0, 146.0)));
        // Contiguous United States.
        assert!(in_box(
            country_centroid("US"),
            (25.0, 49.0),
            (-125.0, -67.0)
        ));
        assert!(in_box(country_centroid("BR"), (-33.0, 5.0), (-74.0, -35.0)));
        assert_eq!(country_continent("JP"), Some("AS"));
        assert_eq!(country_continent("US"), Some("NA"));
        assert_eq!(country_continent("BR"), Some("SA"));
        assert_eq!(country_continent("DE"), Some("EU"));
        assert_eq!(country_continent("AQ"), Some("AN"));
        assert_eq!(country_continent("AU"), Some("OC"));
        assert_eq!(country_continent("ZA"), Some("AF"));
        assert!(in_box(
            continent_centroid("EU"),
            (35.0, 70.0),
            (-10.0, 40.0)
        ));
    }

    #[test]
    fn lookups_ignore_ascii_case() {
        assert_eq!(cloud_region("US-East-1"), cloud_region("us-east-1"));
        assert_eq!(cloud_region("WestEurope"), cloud_region("westeurope"));
        assert_eq!(
            cloud_region("ASIA-NORTHEAST1"),
            cloud_region("asia-northeast1")
        );
        assert!(cloud_region("WESTEUROPE").is_some());
        assert_eq!(country_centroid("jp"), country_centroid("JP"));
        assert_eq!(country_centroid("jP"), country_centroid("JP"));
        assert!(country_centroid("jp").is_some());
        assert_eq!(country_continent("de"), Some("EU"));
        assert_eq!(continent_centroid("eu"), continent_centroid("EU"));
        assert!(continent_centroid("oc").is_some());
    }

    #[test]
    fn unknown_keys_are_none() {
        for name in [
            "",
            "us-east-99",
            "europe-west5",
            "westeurope2",
            "mars-north1",
            "üs-east-1",
        ] {
            assert_eq!(cloud_region(name), None, "{name:?}");
        }
        let long = "x".repeat(MAX_KEY_LEN + 1);
        assert_eq!(cloud_region(&long), None);
        assert_eq!(country_centroid(&long), None);
        for code in ["", "X", "ZZ", "AN", "USA", "U", "é"] {
            assert_eq!(country_centroid(code), None, "{code:?}");
            assert_eq!(country_continent(code), None, "{code:?}");
        }
        for code in ["", "XX", "EUR", "AM"] {
            assert_eq!(continent_centroid(code), None, "{code:?}");
        }
    }
}
