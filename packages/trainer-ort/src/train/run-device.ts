/**
 * A run's device and precision, decided before any graph is built and said once: one log line,
 * plus a warning when `auto` passed faster devices over or the device cannot compute in the
 * precision the config asks for.
 */
import type { CommonConfig } from '@lora/config';
import { chooseDevice, type DeviceChoice, describeDevice } from '../device.ts';
import { precisionOn } from './precision.ts';

export async function announceRunDevice(
  config: Pick<CommonConfig, 'device' | 'mixed_precision'>,
  info: (message: string) => void,
  warn: (code: 'device_fallback' | 'precision_notice', message: string) => void,
): Promise<DeviceChoice> {
  const choice = await chooseDevice(config.device);
  const { precision, notice } = precisionOn(config.mixed_precision, choice);
  const where = choice.adapter === undefined ? choice.device : `${choice.device} (${choice.adapter.name})`;
  info(`device: ${where}, precision ${precision}`);
  if (choice.fallback !== undefined) warn('device_fallback', `training on ${describeDevice(choice)}`);
  if (notice !== undefined) warn('precision_notice', notice);
  return choice;
}
