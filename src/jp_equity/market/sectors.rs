//! The TSE 33-sector classification and its mapping to the 17-sector (TOPIX-17) scheme,
//! and the three market segments.

/// (33-sector code, English name, 17-sector code).
pub const SECTORS_33: &[(&str, &str, &str)] = &[
    ("0050", "Fishery, Agriculture & Forestry", "1"),
    ("1050", "Mining", "2"),
    ("2050", "Construction", "3"),
    ("3050", "Foods", "1"),
    ("3100", "Textiles & Apparels", "4"),
    ("3150", "Pulp & Paper", "4"),
    ("3200", "Chemicals", "4"),
    ("3250", "Pharmaceutical", "5"),
    ("3300", "Oil & Coal Products", "2"),
    ("3350", "Rubber Products", "6"),
    ("3400", "Glass & Ceramics Products", "3"),
    ("3450", "Iron & Steel", "7"),
    ("3500", "Nonferrous Metals", "7"),
    ("3550", "Metal Products", "3"),
    ("3600", "Machinery", "8"),
    ("3650", "Electric Appliances", "9"),
    ("3700", "Transportation Equipment", "6"),
    ("3750", "Precision Instruments", "9"),
    ("3800", "Other Products", "10"),
    ("4050", "Electric Power & Gas", "11"),
    ("5050", "Land Transportation", "12"),
    ("5100", "Marine Transportation", "12"),
    ("5150", "Air Transportation", "12"),
    ("5200", "Warehousing & Harbor Transportation Services", "12"),
    ("5250", "Information & Communication", "10"),
    ("6050", "Wholesale Trade", "13"),
    ("6100", "Retail Trade", "14"),
    ("7050", "Banks", "15"),
    ("7100", "Securities & Commodity Futures", "16"),
    ("7150", "Insurance", "16"),
    ("7200", "Other Financing Business", "16"),
    ("8050", "Real Estate", "17"),
    ("9050", "Services", "10"),
];

/// (17-sector code, name).
pub const SECTORS_17: &[(&str, &str)] = &[
    ("1", "Foods"),
    ("2", "Energy Resources"),
    ("3", "Construction & Materials"),
    ("4", "Raw Materials & Chemicals"),
    ("5", "Pharmaceutical"),
    ("6", "Automobiles & Transportation Equipment"),
    ("7", "Steel & Nonferrous Metals"),
    ("8", "Machinery"),
    ("9", "Electric Appliances & Precision Instruments"),
    ("10", "IT & Services, Others"),
    ("11", "Electric Power & Gas"),
    ("12", "Transportation & Logistics"),
    ("13", "Commercial & Wholesale Trade"),
    ("14", "Retail Trade"),
    ("15", "Banks"),
    ("16", "Financials (ex Banks)"),
    ("17", "Real Estate"),
];

/// (market code, name).
pub const MARKETS: &[(&str, &str)] = &[("0111", "Prime"), ("0112", "Standard"), ("0113", "Growth")];

pub fn sector17_name(code: &str) -> &'static str {
    SECTORS_17
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, n)| *n)
        .unwrap_or("")
}
