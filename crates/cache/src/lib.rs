//! The cache-filling engine of shoal (galaxycache's job): groups, loaders, flights,
//! memory tiers and hot-cache promotion.
#![warn(missing_docs)]
