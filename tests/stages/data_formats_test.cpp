// Image folders and NumPy arrays as prepare stages read them, from files
// the tests write.
#include <gtest/gtest.h>
#include <stb/stb_image_write.h>

#include <cstdlib>
#include <filesystem>
#include <set>

#include "common/error.h"
#include "stages/dataset.h"
#include "tests/support/data_files.h"
#include "tests/support/files.h"
#include "tests/support/temp_dir.h"

namespace baton::stages {
namespace {

namespace fs = std::filesystem;
using baton::testing::GreyPng;
using baton::testing::NpyBytes;
using baton::testing::NpyOf;
using baton::testing::PngBytes;
using baton::testing::TempDir;
using baton::testing::WriteFile;
using baton::testing::ZipBytes;

template <typename F>
Error CatchError(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no baton::Error thrown";
  return Error(ErrorCode::kInternal, "none");
}

bool Mentions(const Error& e, const std::string& text) {
  return std::string(e.what()).find(text) != std::string::npos;
}

// root/CLASS/NN.png, `per_class` grey width x height images per class; class
// k's image i has value base[k] + i.
void WriteClass(const fs::path& root, const std::string& name, int per_class,
                uint8_t base, int width = 6, int height = 4) {
  fs::create_directories(root / name);
  for (int i = 0; i < per_class; ++i) {
    WriteFile(root / name / ("img" + std::to_string(i) + ".png"),
              GreyPng(width, height, static_cast<uint8_t>(base + i)));
  }
}

PrepareSpec ImageSpec(const fs::path& root, uint64_t seed = 7) {
  PrepareSpec spec;
  spec.format = "image_folder";
  spec.path = root.string();
  spec.split_seed = seed;
  return spec;
}

// Every example's pixels equal one value; returns it per example.
std::vector<float> FirstPixels(const torch::Tensor& x) {
  std::vector<float> values;
  for (int64_t i = 0; i < x.size(0); ++i) {
    values.push_back(x[i].flatten()[0].item<float>());
  }
  return values;
}

TEST(PrepareImageFolder, ReadsSortedClassesShapesAndAStratifiedSplit) {
  TempDir dir;
  WriteClass(dir.path(), "shirt", 5, 200);
  WriteClass(dir.path(), "boot", 5, 10);
  WriteFile(dir.path() / "README.txt", "ignored");
  WriteFile(dir.path() / "boot" / "notes.txt", "ignored");
  Dataset data = PrepareImageFolder(ImageSpec(dir.path()));
  EXPECT_EQ(data.meta["classes"], (Json{"boot", "shirt"}));
  EXPECT_EQ(data.num_classes, 2);
  EXPECT_EQ(data.input_shape, (std::vector<int64_t>{1, 4, 6}));
  // Per class of 5: 1 test, 1 validation (of the 4 left), 3 training.
  EXPECT_EQ(data.train_x.sizes(), (std::vector<int64_t>{6, 1, 4, 6}));
  EXPECT_EQ(data.val_x.size(0), 2);
  EXPECT_EQ(data.test_x.size(0), 2);
  EXPECT_EQ(data.meta["train"], 6);
  EXPECT_EQ(data.meta["validation"], 2);
  EXPECT_EQ(data.meta["test"], 2);
  EXPECT_EQ(data.meta["format"], "image_folder");
  EXPECT_EQ(data.meta["source"]["images"], (Json{{"boot", 5}, {"shirt", 5}}));
  EXPECT_EQ(data.meta["source"]["digest"].get<std::string>().size(), 64u);
  std::set<float> seen;
  for (const auto& [x, y] : {std::pair{data.train_x, data.train_y},
                             std::pair{data.val_x, data.val_y},
                             std::pair{data.test_x, data.test_y}}) {
    std::vector<float> pixels = FirstPixels(x);
    for (size_t i = 0; i < pixels.size(); ++i) {
      // boot (id 0) was written as 10..14, shirt (id 1) as 200..204.
      EXPECT_EQ(y[i].item<int64_t>(), pixels[i] > 0.5f ? 1 : 0);
      EXPECT_TRUE(seen.insert(pixels[i]).second) << "example in two splits";
      EXPECT_EQ(x[i].min().item<float>(), x[i].max().item<float>());
    }
    EXPECT_EQ(y.eq(0).sum().item<int64_t>(), y.size(0) / 2);  // stratified
  }
  EXPECT_EQ(seen.size(), 10u);
  EXPECT_TRUE(seen.count(12 / 255.0f));
}

TEST(PrepareImageFolder, TheSplitIsSeeded) {
  TempDir dir;
  WriteClass(dir.path(), "a", 12, 0);
  WriteClass(dir.path(), "b", 12, 100);
  Dataset first = PrepareImageFolder(ImageSpec(dir.path(), 1));
  Dataset again = PrepareImageFolder(ImageSpec(dir.path(), 1));
  EXPECT_TRUE(torch::equal(first.train_x, again.train_x));
  EXPECT_TRUE(torch::equal(first.test_y, again.test_y));
  EXPECT_EQ(FirstPixels(first.val_x), FirstPixels(again.val_x));
  Dataset other = PrepareImageFolder(ImageSpec(dir.path(), 2));
  EXPECT_EQ(other.train_x.sizes(), first.train_x.sizes());
  auto as_set = [](const torch::Tensor& x) {
    std::vector<float> v = FirstPixels(x);
    return std::set<float>(v.begin(), v.end());
  };
  EXPECT_NE(as_set(other.test_x), as_set(first.test_x));
  EXPECT_EQ(first.meta["split_seed"], 1);
}

TEST(PrepareImageFolder, ConvertsChannelsResizesAndNormalises) {
  TempDir dir;
  fs::create_directories(dir.path() / "red");
  fs::create_directories(dir.path() / "grey");
  std::vector<uint8_t> red;
  for (int i = 0; i < 3 * 5; ++i) red.insert(red.end(), {255, 0, 0});
  for (int i = 0; i < 3; ++i) {
    WriteFile(dir.path() / "red" / (std::to_string(i) + ".png"),
              PngBytes(5, 3, 3, red));
    WriteFile(dir.path() / "grey" / (std::to_string(i) + ".PNG"),
              GreyPng(2, 2, 51));
  }
  // A JPEG too: a flat grey one decodes to (nearly) its value.
  std::vector<uint8_t> flat(8 * 8 * 3, 128);
  ASSERT_TRUE(stbi_write_jpg((dir.path() / "grey" / "3.jpeg").c_str(), 8, 8, 3,
                             flat.data(), 95));

  PrepareSpec spec = ImageSpec(dir.path());
  spec.image_size = std::vector<int64_t>{8, 8};
  spec.channels = 3;
  Dataset rgb = PrepareImageFolder(spec);
  EXPECT_EQ(rgb.input_shape, (std::vector<int64_t>{3, 8, 8}));
  EXPECT_EQ(rgb.meta["classes"], (Json{"grey", "red"}));
  torch::Tensor all_x = torch::cat({rgb.train_x, rgb.val_x, rgb.test_x});
  torch::Tensor all_y = torch::cat({rgb.train_y, rgb.val_y, rgb.test_y});
  ASSERT_EQ(all_x.size(0), 7);
  for (int64_t i = 0; i < all_x.size(0); ++i) {
    torch::Tensor image = all_x[i];
    if (all_y[i].item<int64_t>() == 1) {  // red, resized from 5x3
      EXPECT_NEAR(image[0].min().item<float>(), 1.0f, 1e-5);
      EXPECT_NEAR(image[1].max().item<float>(), 0.0f, 1e-5);
      EXPECT_NEAR(image[2].max().item<float>(), 0.0f, 1e-5);
    } else {  // grey, every channel alike
      const float v = image.max().item<float>();
      EXPECT_NEAR(image.min().item<float>(), v, 2 / 255.0f);
      EXPECT_TRUE(std::abs(v - 0.2f) < 1e-5 ||
                  std::abs(v - 128 / 255.0f) < 3 / 255.0f)
          << v;
    }
  }

  spec.channels = 1;  // red -> grey by luminance: (77 * 255) >> 8 = 76
  spec.normalize = false;
  Dataset grey = PrepareImageFolder(spec);
  EXPECT_EQ(grey.input_shape, (std::vector<int64_t>{1, 8, 8}));
  torch::Tensor red_x =
      torch::cat({grey.train_x, grey.val_x, grey.test_x})
          .index({torch::cat({grey.train_y, grey.val_y, grey.test_y}) == 1});
  EXPECT_NEAR(red_x.min().item<float>(), 76 / 255.0f, 1e-5);
  EXPECT_NEAR(red_x.max().item<float>(), 76 / 255.0f, 1e-5);

  spec.normalize = true;
  Dataset normal = PrepareImageFolder(spec);
  EXPECT_NEAR(normal.train_x.mean().item<float>(), 0.0f, 1e-4);
  EXPECT_NEAR(normal.train_x.std(/*unbiased=*/false).item<float>(), 1.0f, 1e-3);
  EXPECT_EQ(normal.meta["normalized"], true);
}

TEST(PrepareImageFolder, ErrorsNameTheFileAndThePointer) {
  {
    TempDir dir;
    WriteClass(dir.path(), "a", 3, 0);
    fs::create_directories(dir.path() / "empty");
    Error e = CatchError([&] { PrepareImageFolder(ImageSpec(dir.path())); });
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_TRUE(Mentions(e, (dir.path() / "empty").string())) << e.what();
    EXPECT_EQ(e.pointer(), "/dataset/path");
  }
  {
    TempDir dir;
    WriteClass(dir.path(), "a", 3, 0);
    WriteClass(dir.path(), "b", 3, 50);
    WriteFile(dir.path() / "b" / "broken.png", "not a png at all");
    Error e = CatchError([&] { PrepareImageFolder(ImageSpec(dir.path())); });
    EXPECT_EQ(e.code(), ErrorCode::kCorrupt);
    EXPECT_TRUE(Mentions(e, (dir.path() / "b" / "broken.png").string()))
        << e.what();
  }
  {
    TempDir dir;
    WriteClass(dir.path(), "a", 3, 0);
    WriteClass(dir.path(), "b", 3, 50);
    WriteFile(dir.path() / "b" / "wide.png", GreyPng(9, 4, 1));
    Error e = CatchError([&] { PrepareImageFolder(ImageSpec(dir.path())); });
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(e.pointer(), "/dataset/image_size");
    EXPECT_TRUE(Mentions(e, "wide.png is 4x9")) << e.what();
    EXPECT_TRUE(Mentions(e, "img0.png is 4x6")) << e.what();
    PrepareSpec resized = ImageSpec(dir.path());
    resized.image_size = std::vector<int64_t>{4, 6};
    EXPECT_EQ(PrepareImageFolder(resized).meta["source"]["images"]["b"], 4);
  }
  {
    TempDir dir;
    WriteClass(dir.path(), "only", 9, 0);
    Error e = CatchError([&] { PrepareImageFolder(ImageSpec(dir.path())); });
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_TRUE(Mentions(e, "at least 2")) << e.what();
  }
  {
    TempDir dir;
    WriteClass(dir.path(), "a", 9, 0);
    WriteClass(dir.path(), "b", 2, 50);
    Error e = CatchError([&] { PrepareImageFolder(ImageSpec(dir.path())); });
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_TRUE(Mentions(e, "class \"b\" has 2 examples")) << e.what();
  }
  Error e = CatchError(
      [] { PrepareImageFolder(ImageSpec("/nonexistent/baton/images")); });
  EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  EXPECT_TRUE(Mentions(e, "/nonexistent/baton/images"));
}

// 12 tabular examples, x row i = [i, 2i, label], labels alternating 0, 1.
std::pair<std::string, std::string> TabularArrays() {
  std::vector<float> x;
  std::vector<int64_t> y;
  for (int i = 0; i < 12; ++i) {
    x.insert(x.end(), {float(i), 2.0f * i, float(i % 2)});
    y.push_back(i % 2);
  }
  return {NpyOf("<f4", {12, 3}, x), NpyOf("<i8", {12}, y)};
}

PrepareSpec ArraySpec(const std::string& format, const std::string& path) {
  PrepareSpec spec;
  spec.format = format;
  spec.path = path;
  spec.split_seed = 3;
  return spec;
}

TEST(PrepareArrays, ReadsStoredAndDeflatedNpz) {
  TempDir dir;
  auto [x, y] = TabularArrays();
  for (bool deflate : {false, true}) {
    const std::string path = dir.File(deflate ? "c.npz" : "s.npz");
    WriteFile(path, ZipBytes({{"x.npy", x}, {"y.npy", y}}, deflate));
    Dataset data = PrepareArrays(ArraySpec("npz", path));
    EXPECT_EQ(data.input_shape, (std::vector<int64_t>{3}));
    EXPECT_EQ(data.num_classes, 2);
    // Per class of 6: 1 test, 1 validation (round(0.5) of 5), 4 training.
    EXPECT_EQ(data.train_x.size(0), 8);
    EXPECT_EQ(data.val_x.size(0), 2);
    EXPECT_EQ(data.test_x.size(0), 2);
    for (const auto& [xs, ys] : {std::pair{data.train_x, data.train_y},
                                 std::pair{data.val_x, data.val_y},
                                 std::pair{data.test_x, data.test_y}}) {
      EXPECT_TRUE(torch::equal(xs.select(1, 2).to(torch::kInt64), ys));
      EXPECT_TRUE(torch::equal(xs.select(1, 1), 2 * xs.select(1, 0)));
    }
    EXPECT_EQ(data.meta["format"], "npz");
    EXPECT_EQ(data.meta["test_split"], "fraction");
    EXPECT_EQ(data.meta["source"]["arrays"]["x"]["dtype"], "float32");
    EXPECT_EQ(data.meta["source"]["arrays"]["y"]["shape"], (Json{12}));
    EXPECT_EQ(data.meta["mean"].size(), 3u);
  }
}

TEST(PrepareArrays, NpzTestArraysAreTheTestSplitAndUint8ImagesAreScaled) {
  TempDir dir;
  std::vector<uint8_t> images(8 * 5 * 5), test_images(3 * 5 * 5, 255);
  std::vector<uint8_t> labels, test_labels = {1, 0, 2};
  for (int i = 0; i < 8; ++i) {
    std::fill(images.begin() + i * 25, images.begin() + (i + 1) * 25, 10 * i);
    labels.push_back(i % 2);
  }
  const std::string path = dir.File("data.npz");
  WriteFile(path,
            ZipBytes({{"images.npy", NpyOf("|u1", {8, 5, 5}, images)},
                      {"labels.npy", NpyOf("|u1", {8}, labels)},
                      {"x_test.npy", NpyOf("|u1", {3, 5, 5}, test_images)},
                      {"y_test.npy", NpyOf("|u1", {3}, test_labels)}},
                     /*deflate=*/true));
  PrepareSpec spec = ArraySpec("npz", path);
  spec.x = "images";
  spec.y = "labels";
  Dataset data = PrepareArrays(spec);
  EXPECT_EQ(data.input_shape, (std::vector<int64_t>{1, 5, 5}));
  EXPECT_EQ(data.num_classes, 3);  // the test labels' 2 counts
  EXPECT_EQ(data.train_x.size(0) + data.val_x.size(0), 8);
  EXPECT_EQ(data.val_x.size(0), 2);
  EXPECT_TRUE(
      torch::equal(data.test_y, torch::tensor({1, 0, 2}, torch::kInt64)));
  EXPECT_FLOAT_EQ(data.test_x.min().item<float>(), 1.0f);
  EXPECT_NEAR(torch::cat({data.train_x, data.val_x}).max().item<float>(),
              70 / 255.0f, 1e-6);
  EXPECT_EQ(data.meta["test_split"], "arrays");
}

TEST(PrepareArrays, ReadsNpyFilesOfAFolder) {
  TempDir dir;
  std::vector<double> x(10 * 2 * 3 * 3);
  for (size_t i = 0; i < x.size(); ++i) x[i] = 0.5 * i;
  std::vector<int32_t> y = {0, 1, 2, 0, 1, 2, 0, 1, 2, 0};
  WriteFile(dir.File("features.npy"), NpyOf("<f8", {10, 2, 3, 3}, x));
  WriteFile(dir.File("classes.npy"), NpyOf("<i4", {10}, y));
  PrepareSpec spec = ArraySpec("npy", dir.path().string());
  spec.x = "features";
  spec.y = "classes";
  spec.validation_fraction = 0.3;
  spec.test_fraction = 0.3;
  spec.normalize = true;
  Dataset data = PrepareArrays(spec);
  EXPECT_EQ(data.input_shape, (std::vector<int64_t>{2, 3, 3}));
  EXPECT_EQ(data.num_classes, 3);
  EXPECT_EQ(data.train_x.size(0) + data.val_x.size(0) + data.test_x.size(0),
            10);
  EXPECT_EQ(data.test_x.size(0), 3);  // one per class
  EXPECT_NEAR(data.train_x.mean().item<float>(), 0.0f, 1e-4);
  EXPECT_TRUE(data.meta["mean"].is_number());
  EXPECT_TRUE(data.meta["source"]["files"].contains("features.npy"));
}

TEST(PrepareArrays, ErrorsNameTheArrayAndThePointer) {
  TempDir dir;
  auto [x, y] = TabularArrays();
  auto npz =
      [&](const std::vector<std::pair<std::string, std::string>>& members) {
        WriteFile(dir.File("d.npz"), ZipBytes(members, /*deflate=*/false));
        return CatchError(
            [&] { PrepareArrays(ArraySpec("npz", dir.File("d.npz"))); });
      };
  Error e = npz({{"features.npy", x}, {"y.npy", y}});
  EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  EXPECT_EQ(e.pointer(), "/dataset/x");
  EXPECT_TRUE(Mentions(e, "has no array \"x\" (it has \"features\", \"y\")"))
      << e.what();

  std::vector<float> fx(12 * 3);
  e = npz({{"x.npy", NpyBytes("<f4", {12, 3}, fx.data(), fx.size() * 4,
                              /*fortran_order=*/true)},
           {"y.npy", y}});
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(Mentions(e, "fortran_order")) << e.what();

  e = npz({{"x.npy", NpyBytes(">f4", {12, 3}, fx.data(), fx.size() * 4)},
           {"y.npy", y}});
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(Mentions(e, "unsupported dtype '>f4'")) << e.what();
  EXPECT_TRUE(Mentions(e, "d.npz:x.npy")) << e.what();

  e = npz({{"x.npy", x},
           {"y.npy", NpyOf("<i8", {11}, std::vector<int64_t>(11, 1))}});
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(e.pointer(), "/dataset/y");
  EXPECT_TRUE(Mentions(e, "has 12 examples but")) << e.what();
  EXPECT_TRUE(Mentions(e, "has 11 labels")) << e.what();

  e = npz(
      {{"x.npy", x}, {"y.npy", NpyOf("<f4", {12}, std::vector<float>(12, 1))}});
  EXPECT_TRUE(Mentions(e, "labels must be integers")) << e.what();

  e = npz({{"x.npy", x},
           {"y.npy", NpyOf("<i8", {12}, std::vector<int64_t>(12, 4))}});
  EXPECT_EQ(e.pointer(), "/dataset/y");
  EXPECT_TRUE(Mentions(e, "1 distinct label(s)")) << e.what();

  std::vector<int64_t> lopsided(12, 0);
  lopsided[5] = 1;
  e = npz({{"x.npy", x}, {"y.npy", NpyOf("<i8", {12}, lopsided)}});
  EXPECT_TRUE(Mentions(e, "class 1 has 1 example;")) << e.what();

  std::vector<int64_t> negative(12, 1);
  negative[3] = -1;
  e = npz({{"x.npy", x}, {"y.npy", NpyOf("<i8", {12}, negative)}});
  EXPECT_TRUE(Mentions(e, "label -1 at index 3")) << e.what();

  e = npz({{"x.npy", x.substr(0, x.size() - 5)}, {"y.npy", y}});
  EXPECT_EQ(e.code(), ErrorCode::kCorrupt);

  e = npz(
      {{"x.npy", NpyOf("<f4", {12}, std::vector<float>(12))}, {"y.npy", y}});
  EXPECT_EQ(e.pointer(), "/dataset/x");

  WriteFile(dir.File("d.npz"), "PK but not really a zip");
  e = CatchError([&] { PrepareArrays(ArraySpec("npz", dir.File("d.npz"))); });
  EXPECT_EQ(e.code(), ErrorCode::kCorrupt);
  EXPECT_TRUE(Mentions(e, dir.File("d.npz")));

  PrepareSpec spec = ArraySpec("npy", dir.path().string());
  WriteFile(dir.File("x.npy"), x);
  e = CatchError([&] { PrepareArrays(spec); });
  EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  EXPECT_TRUE(Mentions(e, dir.File("y.npy"))) << e.what();
  WriteFile(dir.File("y.npy"), y);
  spec.x_test = "held_out";
  spec.test_arrays_named = true;
  e = CatchError([&] { PrepareArrays(spec); });
  EXPECT_EQ(e.pointer(), "/dataset/x_test");
}

// Archives that numpy itself writes, where /usr/bin/python3 has numpy.
TEST(PrepareArrays, ReadsWhatNumpyWrites) {
  TempDir dir;
  const std::string script =
      "import numpy as np\n"
      "x = np.arange(60, dtype=np.float64).reshape(20, 3)\n"
      "y = (np.arange(20) % 2).astype(np.int64)\n"
      "np.savez('" +
      dir.File("s.npz") +
      "', x=x, y=y)\n"
      "np.savez_compressed('" +
      dir.File("c.npz") +
      "', x=x.astype(np.float32), y=y.astype(bool))\n"
      "np.save('" +
      dir.File("x.npy") +
      "', x)\n"
      "np.save('" +
      dir.File("y.npy") + "', y.astype(np.int32))\n";
  WriteFile(dir.File("write.py"), script);
  if (std::system(("/usr/bin/python3 -c 'import numpy' 2>/dev/null && "
                   "/usr/bin/python3 " +
                   dir.File("write.py"))
                      .c_str()) != 0) {
    GTEST_SKIP() << "no /usr/bin/python3 with numpy";
  }
  for (const auto& [format, path] : {std::pair{"npz", dir.File("s.npz")},
                                     std::pair{"npz", dir.File("c.npz")},
                                     std::pair{"npy", dir.path().string()}}) {
    Dataset data = PrepareArrays(ArraySpec(format, path));
    EXPECT_EQ(data.input_shape, (std::vector<int64_t>{3})) << path;
    EXPECT_EQ(data.num_classes, 2);
    EXPECT_EQ(data.train_x.size(0) + data.val_x.size(0) + data.test_x.size(0),
              20);
    torch::Tensor x = data.train_x;
    EXPECT_TRUE(torch::equal(x.select(1, 1), x.select(1, 0) + 1)) << path;
    EXPECT_TRUE(
        torch::equal((x.select(1, 0).to(torch::kInt64) / 3) % 2, data.train_y))
        << path;
  }
}

TEST(ParsePrepareSpec, ReadsImageAndArrayFields) {
  PrepareSpec images = ParsePrepareSpec({{"dataset",
                                          {{"format", "image_folder"},
                                           {"path", "/d"},
                                           {"image_size", {32, 24}},
                                           {"channels", 3}}},
                                         {"split_seed", 9}});
  EXPECT_EQ(images.image_size, (std::vector<int64_t>{32, 24}));
  EXPECT_EQ(images.channels, 3);
  EXPECT_EQ(images.split_seed, 9u);
  PrepareSpec arrays = ParsePrepareSpec({{"dataset",
                                          {{"format", "npy"},
                                           {"path", "/d"},
                                           {"x", "features.npy"},
                                           {"y_test", "t"}}}});
  EXPECT_EQ(arrays.x, "features");
  EXPECT_EQ(arrays.y, "y");
  EXPECT_EQ(arrays.y_test, "t");
  EXPECT_TRUE(arrays.test_arrays_named);
  EXPECT_FALSE(arrays.split_seed);

  auto pointer_of = [](const Json& dataset, Json stage = Json::object()) {
    stage["dataset"] = dataset;
    return CatchError([&] { ParsePrepareSpec(stage); }).pointer();
  };
  EXPECT_EQ(
      pointer_of(
          {{"format", "image_folder"}, {"path", "/d"}, {"image_size", {32}}}),
      "/dataset/image_size");
  EXPECT_EQ(
      pointer_of({{"format", "image_folder"}, {"path", "/d"}, {"channels", 2}}),
      "/dataset/channels");
  EXPECT_EQ(pointer_of({{"format", "npz"}, {"path", "/d"}, {"channels", 1}}),
            "/dataset/channels");
  EXPECT_EQ(pointer_of({{"format", "npy"}, {"path", "/d"}, {"x", "../x"}}),
            "/dataset/x");
  EXPECT_EQ(
      pointer_of({{"format", "image_folder"}, {"path", "/d"}, {"x", "x"}}),
      "/dataset/x");
  EXPECT_EQ(pointer_of({{"format", "tiff"}, {"path", "/d"}}),
            "/dataset/format");
  EXPECT_EQ(
      pointer_of({{"format", "npz"}, {"path", "/d"}}, {{"split_seed", -1}}),
      "/split_seed");
  EXPECT_EQ(
      pointer_of({{"format", "npz"}, {"path", "/d"}}, {{"train_subset", 100}}),
      "/train_subset");
}

}  // namespace
}  // namespace baton::stages
