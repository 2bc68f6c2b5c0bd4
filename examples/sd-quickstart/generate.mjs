// Writes the quick-start's tiny model and images into models/ (git-ignored). Needs the packages
// built first: `pnpm build` at the repository root.
import { join } from 'node:path';
import { writeShapeImages, writeTinySdModel } from '../../packages/trainer-ort/dist/index.js';

const models = join(import.meta.dirname, 'models');
const { checkpoint } = await writeTinySdModel(join(models, 'tiny-sd'));
const captions = await writeShapeImages(join(models, 'shapes'), { count: 12 });
console.log(`wrote ${checkpoint} (+ unet/, text_encoder/, vae/ config.json and tokenizer/)`);
console.log(`wrote ${captions.size} images and metadata.csv to ${join(models, 'shapes')}`);
