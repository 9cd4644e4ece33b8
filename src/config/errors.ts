// config/errors.ts: ConfigError, the one error every configuration failure becomes
// (one line naming file, line and key). Its own file, so that load.ts and validate.ts
// both use it without importing each other.
export class ConfigError extends Error {}
