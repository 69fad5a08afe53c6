/** The version tag of manifest.json; kept apart from the schema so workflows can import it cheaply. */
export const manifestFormat = 'lifeboat.manifest/v1';
